package meshsim

import (
	"os"
	"testing"

	"github.com/serin-dev/serin/test/stack"
)

// st is the real local stack (kube-apiserver with the Istio CRDs, Prometheus,
// Jaeger and istiod) that the integration tests run against.
var st *stack.Stack

func TestMain(m *testing.M) {
	os.Exit(stack.Main(m, stack.Options{Prometheus: true, Jaeger: true, Istiod: true}, &st))
}
