package web_test

import (
	"os"
	"testing"

	"github.com/serin-dev/serin/test/stack"
)

// st is the real local API server (etcd and kube-apiserver), for the
// tests of sessions signed in with service-account tokens.
var st *stack.Stack

func TestMain(m *testing.M) { os.Exit(stack.Main(m, stack.Options{}, &st)) }
