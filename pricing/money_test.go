package pricing_test

import (
	"encoding/json"
	"math"
	"math/rand/v2"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"

	"github.com/reembed/reembed/pricing"
)

func TestParseUSD(t *testing.T) {
	tests := []struct {
		in   string
		want pricing.Micros
	}{
		{"0.02", 20_000},
		{"0.13", 130_000},
		{"0.065", 65_000},
		{"0.0402", 40_200},
		{"1000", 1_000_000_000},
		{"0", 0},
		{"0.000001", 1},
		{".5", 500_000},
		{"1.", 1_000_000},
		{" 0.10 ", 100_000},
		{"007.5", 7_500_000},
		{"9000000000000", 9_000_000_000_000_000_000},
	}
	for _, tt := range tests {
		t.Run("Parses/"+strings.TrimSpace(tt.in), func(t *testing.T) {
			got, err := pricing.ParseUSD(tt.in)
			if err != nil || got != tt.want {
				t.Errorf("ParseUSD(%q) = %d, %v; want %d", tt.in, got, err, tt.want)
			}
		})
	}
	for _, in := range []string{"", " ", "-1", "+1", "1e3", "$1", "0.0000001", "1.2.3", "1,000", "abc", "0x10", "9000000000001", "99999999999999999999", "."} {
		t.Run("Rejects/"+in, func(t *testing.T) {
			if got, err := pricing.ParseUSD(in); err == nil {
				t.Errorf("ParseUSD(%q) = %d, want an error", in, got)
			}
		})
	}
}

func TestMicrosString(t *testing.T) {
	tests := []struct {
		in   pricing.Micros
		want string
	}{
		{0, "0"},
		{1, "0.000001"},
		{20_000, "0.02"},
		{65_000, "0.065"},
		{1_000_000, "1"},
		{1_000_000_000, "1000"},
		{12_345_678, "12.345678"},
		{-1_500_000, "-1.5"},
		{-1, "-0.000001"},
	}
	for _, tt := range tests {
		t.Run(tt.want, func(t *testing.T) {
			if got := tt.in.String(); got != tt.want {
				t.Errorf("Micros(%d).String() = %q, want %q", int64(tt.in), got, tt.want)
			}
		})
	}
}

func TestMicrosRoundTrips(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	values := []pricing.Micros{0, 1, 999_999, 1_000_000, 1_000_001, 9_000_000_000_000_000_000}
	for range 2000 {
		values = append(values, pricing.Micros(r.Int64N(1e15)))
	}
	for _, m := range values {
		got, err := pricing.ParseUSD(m.String())
		if err != nil || got != m {
			t.Fatalf("ParseUSD(%q) = %d, %v; want %d", m.String(), got, err, m)
		}
		b, err := json.Marshal(m)
		if err != nil {
			t.Fatal(err)
		}
		var back pricing.Micros
		if err := json.Unmarshal(b, &back); err != nil || back != m {
			t.Fatalf("JSON %s -> %d, %v; want %d", b, back, err, m)
		}
		var y pricing.Micros
		if err := yaml.Unmarshal(b, &y); err != nil || y != m {
			t.Fatalf("YAML %s -> %d, %v; want %d", b, y, err, m)
		}
	}
}

func TestMicrosJSON(t *testing.T) {
	t.Run("NumberAndStringAccepted", func(t *testing.T) {
		var v struct{ A, B pricing.Micros }
		if err := json.Unmarshal([]byte(`{"A": 0.13, "B": "0.065"}`), &v); err != nil || v.A != 130_000 || v.B != 65_000 {
			t.Errorf("got %+v, %v; want 130000 and 65000", v, err)
		}
	})
	t.Run("MarshalsExactDecimal", func(t *testing.T) {
		b, _ := json.Marshal(struct{ P pricing.Micros }{65_000})
		if string(b) != `{"P":0.065}` {
			t.Errorf("got %s", b)
		}
	})
	t.Run("ExponentRejected", func(t *testing.T) {
		var m pricing.Micros
		if err := json.Unmarshal([]byte(`1e-2`), &m); err == nil {
			t.Errorf("1e-2 accepted as %d; want an error rather than float rounding", m)
		}
	})
}

func TestCost(t *testing.T) {
	tests := []struct {
		name         string
		tokens       int64
		price        pricing.Micros // per 1M tokens
		want, wantUp pricing.Micros
	}{
		{"AdaTenMillionDocs", 10_000_000_000, 100_000, 1_000_000_000, 1_000_000_000}, // 1e10 tokens at $0.10 = $1,000
		{"OneMillionAtTwoCents", 1_000_000, 20_000, 20_000, 20_000},
		{"ZeroTokens", 0, 130_000, 0, 0},
		{"FreeModel", 1_000_000, 0, 0, 0},
		{"HalfMicroRoundsUp", 1, 500_000, 1, 1},              // 0.5 µ$
		{"BelowHalfRoundsDown", 1, 499_999, 0, 1},            // 0.499999 µ$
		{"HalfUpAtScale", 25, 20_000, 1, 1},                  // 0.5 µ$
		{"JustBelowHalf", 24, 20_000, 0, 1},                  // 0.48 µ$
		{"SampleCorpus", 618_042, 20_000, 12_361, 12_361},    // 12360.84 µ$
		{"ThreeLarge", 1_234_567, 130_000, 160_494, 160_494}, // 160493.71 µ$
		{"CeilOnlyWhenFractional", 1_000_001, 20_000, 20_000, 20_001},
		// 10^14 tokens at $0.13 is 1.3·10^19 µ$·tokens before the division: past int64.
		{"LargeWhatIfDoesNotOverflow", 100_000_000_000_000, 130_000, 13_000_000_000_000, 13_000_000_000_000},
		{"SaturatesBeyondInt64", math.MaxInt64, 9_000_000_000, math.MaxInt64, math.MaxInt64},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := pricing.Cost(tt.tokens, tt.price); got != tt.want {
				t.Errorf("Cost(%d, %s) = %d µ$, want %d", tt.tokens, tt.price, got, tt.want)
			}
			if got := pricing.CostCeil(tt.tokens, tt.price); got != tt.wantUp {
				t.Errorf("CostCeil(%d, %s) = %d µ$, want %d", tt.tokens, tt.price, got, tt.wantUp)
			}
		})
	}
}

// TestCostAddsUp: costing parts separately never undercuts the reservation
// (CostCeil of each part covers Cost of the whole).
func TestCostCeilCoversParts(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	for range 1000 {
		price := pricing.Micros(r.Int64N(200_000))
		var total int64
		var reserved pricing.Micros
		for range 1 + r.IntN(20) {
			n := r.Int64N(300_000)
			total += n
			reserved += pricing.CostCeil(n, price)
		}
		if whole := pricing.Cost(total, price); reserved < whole {
			t.Fatalf("price %d: reserved %d < cost %d of %d tokens", price, reserved, whole, total)
		}
	}
}
