# Switchboard backend with the built web chat. Two stages: `build` compiles with every dependency;
# the runtime image holds production dependencies, compiled JavaScript, the front and the protos,
# and runs as an unprivileged user. tests/integration/dockerfile.test.ts runs these same RUN steps
# and this CMD outside a container (no Docker engine in CI), so keep them plain shell.
FROM node:20-bookworm-slim AS build
WORKDIR /src
COPY package.json package-lock.json ./
COPY protocol/package.json protocol/
COPY backend/package.json backend/
COPY messages-lib/package.json messages-lib/
COPY front/package.json front/
RUN npm ci --prefer-offline --no-audit --no-fund
COPY . .
RUN npx tsc -b protocol backend messages-lib && npm run build -w front

FROM node:20-bookworm-slim AS runtime
ENV NODE_ENV=production
WORKDIR /app
COPY package.json package-lock.json ./
COPY protocol/package.json protocol/
COPY backend/package.json backend/
COPY messages-lib/package.json messages-lib/
COPY front/package.json front/
RUN npm ci --omit=dev --prefer-offline --no-audit --no-fund -w protocol -w backend -w messages-lib && npm cache clean --force
COPY --from=build /src/protocol/dist protocol/dist
COPY --from=build /src/backend/dist backend/dist
COPY --from=build /src/messages-lib/dist messages-lib/dist
COPY --from=build /src/front/dist front/dist
COPY proto proto
# The node image's own `node` user is 1000; the manifests run as 10001 (runAsNonRoot needs a number).
USER 10001:10001
EXPOSE 8080 50051 5800 9090
CMD ["node", "backend/dist/main.js"]
