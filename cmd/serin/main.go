// Command serin is the progressive delivery controller for Istio canaries.
//
//	serin controller [flags]   run the controller
//	serin rollout <command>    start, list, watch and steer rollouts through the REST API
//	serin version              print the version (also serin --version)
//
// Run under the name kubectl-serin (a link or a copy), it is the kubectl
// plugin `kubectl serin`, which steers rollouts with the user's kubeconfig
// (plugin.go).
package main

import (
	"fmt"
	"os"

	// The zone database is compiled in, so that schedules name any IANA
	// zone in an image without /usr/share/zoneinfo (deploy/image builds
	// one). It adds about 400 kB to the binary.
	_ "time/tzdata"
)

// version is stamped at build time with -ldflags "-X main.version=...".
var version = "dev"

func main() {
	if isPlugin(os.Args[0]) {
		os.Exit(runPlugin(os.Args[1:]))
	}
	os.Exit(run(os.Args[1:]))
}

func run(args []string) int {
	if len(args) == 0 {
		usage()
		return 2
	}
	switch args[0] {
	case "controller":
		return runController(args[1:])
	case "rollout":
		return runRollout(args[1:])
	case "version", "--version", "-version":
		fmt.Println(version)
		return 0
	case "-h", "--help", "help":
		usage()
		return 0
	default:
		fmt.Fprintf(os.Stderr, "serin: unknown command %q\n", args[0])
		usage()
		return 2
	}
}

func usage() {
	fmt.Fprint(os.Stderr, `usage: serin <command> [flags]

commands:
  controller   run the rollout controller (serin controller -h for flags)
  rollout      start, list, watch and steer rollouts through the REST API (serin rollout -h)
  version      print the version (also --version)
`)
}
