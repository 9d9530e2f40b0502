// Command kubelet is the upstream kubelet, built from the k8s.io/kubernetes
// module pinned in ../../go.mod. The test node runs it against containerd so
// that Pods of the project's image run as real containers: as their user, on
// a read-only root, with their termination message and SIGTERM on deletion.
// The body mirrors cmd/kubelet/kubelet.go of that release.
package main

import (
	"context"
	"os"

	"k8s.io/component-base/cli"
	_ "k8s.io/component-base/logs/json/register"          // JSON log format, as upstream
	_ "k8s.io/component-base/metrics/prometheus/clientgo" // client-go metrics, as upstream
	_ "k8s.io/component-base/metrics/prometheus/version"  // version metric, as upstream
	"k8s.io/kubernetes/cmd/kubelet/app"
)

func main() {
	command := app.NewKubeletCommand(context.Background())
	os.Exit(cli.Run(command))
}
