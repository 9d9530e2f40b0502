// Command etcd is the upstream etcd server, built from the
// go.etcd.io/etcd/server/v3 module pinned in ../../go.mod. It is the same
// entry point as etcd's own main package: etcdmain.Main with the process
// arguments.
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() {
	etcdmain.Main(os.Args)
}
