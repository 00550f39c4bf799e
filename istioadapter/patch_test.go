package istioadapter

import "testing"

func TestWeightPatch(t *testing.T) {
	tests := []struct {
		name   string
		rv     string
		res    resolved
		canary int32
		want   string // the patch; "" means an error
	}{
		{name: "quarter",
			rv: "42", res: resolved{HTTP: 2, Stable: 0, Canary: 1}, canary: 25,
			want: `[{"op":"replace","path":"/metadata/resourceVersion","value":"42"},` +
				`{"op":"add","path":"/spec/http/2/route/0/weight","value":75},` +
				`{"op":"add","path":"/spec/http/2/route/1/weight","value":25}]`},
		{name: "zero writes an explicit zero",
			rv: "1", res: resolved{HTTP: 0, Stable: 1, Canary: 0}, canary: 0,
			want: `[{"op":"replace","path":"/metadata/resourceVersion","value":"1"},` +
				`{"op":"add","path":"/spec/http/0/route/1/weight","value":100},` +
				`{"op":"add","path":"/spec/http/0/route/0/weight","value":0}]`},
		{name: "all",
			rv: "9", res: resolved{HTTP: 1, Stable: 0, Canary: 1}, canary: 100,
			want: `[{"op":"replace","path":"/metadata/resourceVersion","value":"9"},` +
				`{"op":"add","path":"/spec/http/1/route/0/weight","value":0},` +
				`{"op":"add","path":"/spec/http/1/route/1/weight","value":100}]`},
		{name: "no resourceVersion", rv: "", res: resolved{Stable: 0, Canary: 1}, canary: 10},
		{name: "negative", rv: "1", res: resolved{Stable: 0, Canary: 1}, canary: -1},
		{name: "above 100", rv: "1", res: resolved{Stable: 0, Canary: 1}, canary: 101},
	}
	for _, tc := range tests {
		got, err := weightPatch(tc.rv, tc.res, tc.canary)
		switch {
		case tc.want == "" && err == nil:
			t.Errorf("%s: weightPatch = %s, want an error", tc.name, got)
		case tc.want != "" && err != nil:
			t.Errorf("%s: weightPatch: %v", tc.name, err)
		case string(got) != tc.want:
			t.Errorf("%s: weightPatch =\n  %s\nwant\n  %s", tc.name, got, tc.want)
		}
	}
}
