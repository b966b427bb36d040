// Run by the mongodb-init Job with `mongosh --nodb`. Idempotent: an initiated set and an
// existing user are left as they are.
const members = Number(process.env.MONGO_MEMBERS || '3');
const rootPassword = process.env.MONGO_ROOT_PASSWORD;
const appPassword = process.env.MONGO_APP_PASSWORD;
const host = (i) => `mongodb-${i}.mongodb:27017`;

function connect(address) {
  for (let attempt = 1; ; attempt++) {
    try {
      return new Mongo(
        `mongodb://root:${encodeURIComponent(rootPassword)}@${address}/admin?directConnection=true`,
      );
    } catch (e) {
      if (attempt >= 60) throw e;
      print(`waiting for ${address}: ${e.message}`);
      sleep(2000);
    }
  }
}

const first = connect(host(0)).getDB('admin');
let initiated = true;
try {
  first.adminCommand({ replSetGetStatus: 1 });
} catch (e) {
  if (e.codeName !== 'NotYetInitialized') throw e;
  initiated = false;
}
if (!initiated) {
  const config = { _id: 'rs0', members: [] };
  for (let i = 0; i < members; i++) config.members.push({ _id: i, host: host(i), priority: i === 0 ? 2 : 1 });
  printjson(first.adminCommand({ replSetInitiate: config }));
}

let primary;
for (let attempt = 1; !primary; attempt++) {
  const hello = first.adminCommand({ hello: 1 });
  primary = hello.primary;
  if (!primary) {
    if (attempt >= 90) throw new Error('no primary after 3 minutes');
    sleep(2000);
  }
}
print(`primary: ${primary}`);

const app = connect(primary).getDB('switchboard');
if (!app.getUser('switchboard')) {
  app.createUser({
    user: 'switchboard',
    pwd: appPassword,
    roles: [{ role: 'readWrite', db: 'switchboard' }],
  });
  print('created user switchboard');
} else {
  app.updateUser('switchboard', { pwd: appPassword });
  print('user switchboard exists; password set from the secret');
}
