// Command pause holds a Pod's namespaces on the real test node: containerd's
// sandbox image runs it. No registry is reachable here, so the suite packs
// this static program into a local image instead of pulling the upstream one.
// Like the upstream pause container it waits for a signal and exits 0 on
// SIGINT or SIGTERM, and it reaps children when it is the PID namespace's init.
package main

import (
	"os"
	"os/signal"
	"syscall"
)

func main() {
	signals := make(chan os.Signal, 4)
	signal.Notify(signals, syscall.SIGINT, syscall.SIGTERM, syscall.SIGCHLD)
	for received := range signals {
		if received != syscall.SIGCHLD {
			os.Exit(0)
		}
		for {
			pid, err := syscall.Wait4(-1, nil, syscall.WNOHANG, nil)
			if pid <= 0 || err != nil {
				break
			}
		}
	}
}
