package stack

import (
	"strings"
	"testing"
)

// istioctlOutput is what istioctl analyze -A -o json printed on the demo
// mesh without Services (trimmed to two messages).
const istioctlOutput = `[
	{
		"code": "IST0101",
		"documentationUrl": "https://istio.io/v1.30/docs/reference/config/analysis/ist0101/?ref=istioctl-analyze",
		"level": "Error",
		"message": "Referenced host not found: \"checkout.shop.svc.cluster.local\"",
		"origin": "VirtualService shop/checkout"
	},
	{
		"code": "IST0102",
		"documentationUrl": "https://istio.io/v1.30/docs/reference/config/analysis/ist0102/?ref=istioctl-analyze",
		"level": "Info",
		"message": "The namespace is not enabled for Istio injection.",
		"origin": "Namespace shop"
	}
]`

func TestParseAnalysis(t *testing.T) {
	msgs, err := parseAnalysis([]byte(istioctlOutput))
	if err != nil {
		t.Fatal(err)
	}
	want := []Message{
		{Code: "IST0101", Level: LevelError, Origin: "VirtualService shop/checkout", Kind: "VirtualService", Namespace: "shop", Name: "checkout",
			Message: `Referenced host not found: "checkout.shop.svc.cluster.local"`},
		{Code: "IST0102", Level: LevelInfo, Origin: "Namespace shop", Kind: "Namespace", Name: "shop",
			Message: "The namespace is not enabled for Istio injection."},
	}
	if len(msgs) != len(want) {
		t.Fatalf("got %d messages, want %d: %v", len(msgs), len(want), msgs)
	}
	for i := range want {
		if msgs[i] != want[i] {
			t.Errorf("message %d = %+v, want %+v", i, msgs[i], want[i])
		}
		if !msgs[i].About("shop") || msgs[i].About("shop2") {
			t.Errorf("message %d: About(shop) false or About(shop2) true", i)
		}
	}
	for _, bad := range []string{"", "{}", `[{"origin":"VirtualService a/b"}]`} {
		if _, err := parseAnalysis([]byte(bad)); err == nil {
			t.Errorf("parseAnalysis(%q) = nil error, want one", bad)
		}
	}
	if msgs, err := parseAnalysis([]byte("[]")); err != nil || len(msgs) != 0 {
		t.Errorf(`parseAnalysis("[]") = %v, %v; want no messages`, msgs, err)
	}
	if s := msgs[0].String(); !strings.HasPrefix(s, "Error [IST0101] (VirtualService shop/checkout) ") {
		t.Errorf("String() = %q, not istioctl's text format", s)
	}
}
