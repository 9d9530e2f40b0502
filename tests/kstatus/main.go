// Command kstatus reads Kubernetes objects as JSON (one per line, or one document) on stdin
// and prints, for each, the status the kstatus library computes (the same library Flux,
// kpt and `kubectl wait`-style tools use): one JSON line {"status": ..., "message": ...}.
package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/cli-utils/pkg/kstatus/status"
)

type answer struct {
	Status  string `json:"status"`
	Message string `json:"message"`
	Error   string `json:"error,omitempty"`
}

func main() {
	decoder := json.NewDecoder(bufio.NewReader(os.Stdin))
	encoder := json.NewEncoder(os.Stdout)
	for decoder.More() {
		var raw json.RawMessage
		if err := decoder.Decode(&raw); err != nil {
			fmt.Fprintf(os.Stderr, "kstatus: cannot read an object: %v\n", err)
			os.Exit(2)
		}
		// Unstructured's own decoder keeps integers as int64, as the API machinery expects.
		object := &unstructured.Unstructured{}
		if err := object.UnmarshalJSON(raw); err != nil {
			fmt.Fprintf(os.Stderr, "kstatus: not a Kubernetes object: %v\n", err)
			os.Exit(2)
		}
		result, err := status.Compute(object)
		reply := answer{}
		if err != nil {
			reply.Error = err.Error()
		} else {
			reply.Status = result.Status.String()
			reply.Message = result.Message
		}
		if err := encoder.Encode(reply); err != nil {
			os.Exit(1)
		}
	}
}
