// Command kube-apiserver is the upstream kube-apiserver, built from the
// k8s.io/kubernetes module pinned in ../../go.mod. The body mirrors
// cmd/kube-apiserver/apiserver.go of that release, so the test control plane
// serves exactly what a cluster of that version serves.
package main

import (
	"os"
	_ "time/tzdata" // CronJob time zones, as upstream

	"k8s.io/component-base/cli"
	_ "k8s.io/component-base/logs/json/register"          // JSON log format, as upstream
	_ "k8s.io/component-base/metrics/prometheus/clientgo" // client-go metrics, as upstream
	_ "k8s.io/component-base/metrics/prometheus/version"  // version metric, as upstream
	"k8s.io/kubernetes/cmd/kube-apiserver/app"
)

func main() {
	command := app.NewAPIServerCommand()
	os.Exit(cli.Run(command))
}
