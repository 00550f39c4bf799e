package istioexporter

import (
	"os"
	"testing"

	"github.com/serin-dev/serin/test/stack"
)

// st is the real local stack (kube-apiserver with the Istio CRDs, and
// Prometheus) that the integration test runs against.
var st *stack.Stack

func TestMain(m *testing.M) {
	os.Exit(stack.Main(m, stack.Options{Prometheus: true}, &st))
}
