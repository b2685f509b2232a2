package pricing

import (
	"encoding/json"
	"fmt"
	"math"
	"math/bits"
	"reflect"
	"strconv"
	"strings"
)

// Micros is an amount of US dollars in integer micro-dollars (1 USD = 1,000,000).
// Money in reembed is never accumulated in floating point.
type Micros int64

// ParseUSD parses a decimal dollar amount such as "0.02" or "1000" exactly.
// It accepts at most six decimal places and no sign, exponent or currency symbol.
func ParseUSD(s string) (Micros, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return 0, fmt.Errorf("empty amount")
	}
	whole, frac, _ := strings.Cut(s, ".")
	if whole == "" && frac == "" {
		return 0, fmt.Errorf("amount %q has no digits", s)
	}
	if whole == "" {
		whole = "0"
	}
	if len(frac) > 6 {
		return 0, fmt.Errorf("amount %q has more than 6 decimal places", s)
	}
	for _, part := range []string{whole, frac} {
		for _, c := range part {
			if c < '0' || c > '9' {
				return 0, fmt.Errorf("amount %q is not a non-negative decimal number", s)
			}
		}
	}
	w, err := strconv.ParseInt(whole, 10, 64)
	if err != nil || w > 9_000_000_000_000 {
		return 0, fmt.Errorf("amount %q is too large", s)
	}
	f := int64(0)
	if frac != "" {
		f, _ = strconv.ParseInt(frac+strings.Repeat("0", 6-len(frac)), 10, 64)
	}
	return Micros(w*1_000_000 + f), nil
}

// String formats m as a decimal dollar amount with no trailing zeros, e.g. "0.02".
func (m Micros) String() string {
	neg := m < 0
	if neg {
		m = -m
	}
	s := strconv.FormatInt(int64(m/1_000_000), 10)
	if f := int64(m % 1_000_000); f != 0 {
		s += "." + strings.TrimRight(fmt.Sprintf("%06d", f), "0")
	}
	if neg {
		s = "-" + s
	}
	return s
}

// USD returns m in dollars as a float64, for display and JSON consumers only.
func (m Micros) USD() float64 { return float64(m) / 1e6 }

// MarshalJSON writes m as an exact JSON number of dollars, e.g. 0.02.
func (m Micros) MarshalJSON() ([]byte, error) { return []byte(m.String()), nil }

// UnmarshalJSON reads a JSON number or string of dollars exactly. A leading
// minus sign is read too (catalog validation rejects negative prices and names
// the field); any other malformed amount is a *json.UnmarshalTypeError, which
// encoding/json completes with the field's name.
func (m *Micros) UnmarshalJSON(b []byte) error {
	var n json.Number
	if err := json.Unmarshal(b, &n); err != nil {
		var s string
		if err2 := json.Unmarshal(b, &s); err2 != nil {
			return fmt.Errorf("amount %s is not a number", b)
		}
		n = json.Number(s)
	}
	v, err := parseAmount(n.String())
	if err != nil {
		// An UnmarshalTypeError gets the field's name from encoding/json.
		return &json.UnmarshalTypeError{Value: fmt.Sprintf("%s (%v)", b, err), Type: reflect.TypeFor[Micros]()}
	}
	*m = v
	return nil
}

// parseAmount is ParseUSD that also accepts a leading minus sign, so that a
// negative price in a file reaches validation, whose error names the field.
func parseAmount(s string) (Micros, error) {
	if rest, ok := strings.CutPrefix(strings.TrimSpace(s), "-"); ok {
		v, err := ParseUSD(rest)
		return -v, err
	}
	return ParseUSD(s)
}

// Cost returns the price of tokens at pricePer1M (micro-dollars per million
// tokens), rounded half up to the micro-dollar. The product is computed in 128
// bits, so any token count is exact; a cost beyond math.MaxInt64 micro-dollars
// saturates there. tokens and pricePer1M must not be negative.
func Cost(tokens int64, pricePer1M Micros) Micros {
	return mulDiv1M(tokens, pricePer1M, 500_000)
}

// CostCeil is Cost rounded up: the amount a budget reserves before a request,
// so that settled costs never exceed what was reserved.
func CostCeil(tokens int64, pricePer1M Micros) Micros {
	return mulDiv1M(tokens, pricePer1M, 999_999)
}

// mulDiv1M returns (tokens×price + add) / 10^6 without overflow, saturating
// at math.MaxInt64; a negative operand gives 0.
func mulDiv1M(tokens int64, price Micros, add uint64) Micros {
	if tokens <= 0 || price <= 0 {
		return 0
	}
	hi, lo := bits.Mul64(uint64(tokens), uint64(price))
	lo, carry := bits.Add64(lo, add, 0)
	hi += carry
	if hi >= 1_000_000 { // the quotient would not fit 64 bits
		return math.MaxInt64
	}
	q, _ := bits.Div64(hi, lo, 1_000_000)
	if q > math.MaxInt64 {
		return math.MaxInt64
	}
	return Micros(q)
}
