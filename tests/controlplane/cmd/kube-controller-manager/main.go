// Command kube-controller-manager is the upstream kube-controller-manager,
// built from the k8s.io/kubernetes module pinned in ../../go.mod. The test
// control plane runs it so that the real Job controller turns Jobs into Pods
// and the real garbage collector cascades owner references on delete.
package main

import (
	"os"
	_ "time/tzdata" // CronJob time zones, as upstream

	"k8s.io/component-base/cli"
	_ "k8s.io/component-base/logs/json/register"          // JSON log format, as upstream
	_ "k8s.io/component-base/metrics/prometheus/clientgo" // client-go metrics, as upstream
	_ "k8s.io/component-base/metrics/prometheus/version"  // version metric, as upstream
	"k8s.io/kubernetes/cmd/kube-controller-manager/app"
)

func main() {
	command := app.NewControllerManagerCommand()
	os.Exit(cli.Run(command))
}
