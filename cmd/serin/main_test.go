package main

import (
	"os"
	"testing"

	"github.com/serin-dev/serin/test/stack"
)

// st is the real local API server (etcd and kube-apiserver) that the
// rollout CLI tests run the REST API over.
var st *stack.Stack

func TestMain(m *testing.M) { os.Exit(stack.Main(m, stack.Options{}, &st)) }
