// etcd 3.6 for the local test cluster: the upstream server's own entry point, built from the Go
// module proxy (Debian's etcd 3.4 lacks the RequestWatchProgress the 1.34 apiserver needs).
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() {
	etcdmain.Main(os.Args)
}
