package istioexporter

import (
	"fmt"
	"math"
	"math/rand/v2"
	"sync/atomic"
	"time"
)

// The versions of every service: v1 is the stable, v2 the canary.
const (
	StableVersion = "v1"
	CanaryVersion = "v2"
)

// storeSuffix names each service's one downstream service: service-0001
// calls service-0001-store.
const storeSuffix = "-store"

// ServiceName is the name of the i-th service (1-based): service-0001.
func ServiceName(i int) string { return fmt.Sprintf("service-%04d", i) }

// Host is the cluster FQDN of a service, the destination_service of its
// series and the host of its VirtualService and DestinationRule.
func Host(namespace, service string) string { return fqdn(service, namespace) }

// service is one synthetic service: its two versions and the canary weight
// in effect.
type service struct {
	name     string
	host     string
	versions [2]*workload // StableVersion, CanaryVersion
	// canary is the canary weight in percent that the informer last found
	// on the service's route; -1 means no route sends to its subsets, and
	// all traffic goes to v1.
	canary atomic.Int32
}

// workload is one version of a service (its Deployment): its random
// stream, its fault and its series. Only its target's stepping goroutine
// draws and counts; the fault is set from anywhere.
type workload struct {
	name      string
	r         *rand.Rand
	errorRate atomic.Uint64 // math.Float64bits of the injected Fault.ErrorRate
	inbound   *codeSeries   // reporter="destination", from the gateway
	hop       *codeSeries   // reporter="source", to the store
}

func newService(m *metrics, ns, name string, seed uint64) *service {
	s := &service{name: name, host: Host(ns, name)}
	s.canary.Store(-1)
	for i, v := range []string{StableVersion, CanaryVersion} {
		self := workloadPeer(ns, name, v)
		store := workloadPeer(ns, name+storeSuffix, StableVersion)
		s.versions[i] = &workload{
			name:    v,
			r:       newRand(seed, name+"/"+v),
			inbound: newCodeSeries(m, series{reporter: "destination", src: gatewayPeer(), dst: self, policy: "mutual_tls"}),
			hop:     newCodeSeries(m, series{reporter: "source", src: self, dst: store, policy: unknown}),
		}
	}
	return s
}

// shares returns the fractions of the traffic that go to v1 and v2.
func (s *service) shares() [2]float64 {
	w := s.canary.Load()
	if w < 0 {
		return [2]float64{1, 0}
	}
	c := float64(w) / 100
	return [2]float64{1 - c, c}
}

// step advances the service's counters by dt of traffic at rps requests
// per second, split by the weight in effect, each request failing with
// the version's injected error rate or the background rate.
func (s *service) step(dt time.Duration, rps, background float64) {
	shares := s.shares()
	for i, v := range s.versions {
		v.step(poisson(v.r, rps*dt.Seconds()*shares[i]), background)
	}
}

// step counts n requests to v. A failed request answers 500 and makes no
// downstream call; a served one makes one call to the store, which
// succeeds.
func (v *workload) step(n int, background float64) {
	if n == 0 {
		return
	}
	fault := math.Float64frombits(v.errorRate.Load())
	fail := 1 - (1-fault)*(1-background) // two independent draws, as in test/meshsim
	var served, failed int
	for range n {
		if fail > 0 && v.r.Float64() < fail {
			failed++
			v.inbound.code(500).duration.Observe(latencyMs(v.r, inboundMedianMs))
			continue
		}
		served++
		v.inbound.code(200).duration.Observe(latencyMs(v.r, inboundMedianMs))
		v.hop.code(200).duration.Observe(latencyMs(v.r, hopMedianMs))
	}
	if served > 0 {
		v.inbound.code(200).requests.Add(float64(served))
		v.hop.code(200).requests.Add(float64(served))
	}
	if failed > 0 {
		v.inbound.code(500).requests.Add(float64(failed))
	}
}
