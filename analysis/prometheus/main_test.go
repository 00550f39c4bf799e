package prometheus

import (
	"os"
	"testing"

	"github.com/serin-dev/serin/test/stack"
)

// st is the local stack with a real Prometheus, for integration_test.go.
// The unit tests do not use it, but share the test binary.
var st *stack.Stack

func TestMain(m *testing.M) { os.Exit(stack.Main(m, stack.Options{Prometheus: true}, &st)) }
