// Builds the etcd server: mirrors go.etcd.io/etcd/server/v3/main.go (v3.6.x).
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() {
	etcdmain.Main(os.Args)
}
