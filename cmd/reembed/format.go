package main

import (
	"encoding/json"
	"fmt"
	"io"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/reembed/reembed/corpus"
	"github.com/reembed/reembed/pricing"
)

// commas renders n with thousands separators: 10000000 -> "10,000,000".
func commas(n int64) string {
	s := strconv.FormatInt(n, 10)
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	if neg {
		return "-" + b.String()
	}
	return b.String()
}

// plural renders n and the noun in its singular or plural form:
// plural(1, "file", "files") = "1 file", plural(2000, ...) = "2,000 files".
func plural(n int64, one, many string) string {
	if n == 1 {
		return "1 " + one
	}
	return commas(n) + " " + many
}

// money renders m as dollars with exactly decimals decimals (rounded half
// up), with thousands separators: "$1,234.50".
func money(m pricing.Micros, decimals int) string {
	scale := int64(1)
	for range 6 - decimals {
		scale *= 10
	}
	v := (int64(m) + scale/2) / scale
	s := commas(v / pow10(decimals))
	if decimals > 0 {
		s += fmt.Sprintf(".%0*d", decimals, v%pow10(decimals))
	}
	return "$" + s
}

func pow10(n int) int64 {
	p := int64(1)
	for range n {
		p *= 10
	}
	return p
}

// moneyDecimals returns the decimals (2 to 6) that show every amount of ms
// exactly, so that a column of amounts shares one number of decimals and
// its points line up.
func moneyDecimals(ms ...pricing.Micros) int {
	d := 2
	for _, m := range ms {
		for d < 6 && int64(m)%pow10(6-d) != 0 {
			d++
		}
	}
	return d
}

// humanDuration renders d the way a person says it: "4h", "1h30m", "45s",
// "2d3h", "0.4s" (never "4h0m0s").
func humanDuration(d time.Duration) string {
	if d < 10*time.Second {
		if d%time.Second == 0 {
			return strconv.FormatInt(int64(d/time.Second), 10) + "s"
		}
		return strconv.FormatFloat(d.Seconds(), 'f', 1, 64) + "s"
	}
	d = d.Round(time.Second)
	days, h := int64(d/(24*time.Hour)), int64(d%(24*time.Hour)/time.Hour)
	m, s := int64(d%time.Hour/time.Minute), int64(d%time.Minute/time.Second)
	if days > 0 { // minutes do not matter after days
		if h == 0 {
			return fmt.Sprintf("%dd", days)
		}
		return fmt.Sprintf("%dd%dh", days, h)
	}
	var b strings.Builder
	for _, p := range []struct {
		n    int64
		unit string
	}{{h, "h"}, {m, "m"}, {s, "s"}} {
		if p.n > 0 {
			fmt.Fprintf(&b, "%d%s", p.n, p.unit)
		}
	}
	return b.String()
}

// skippedSummary groups skipped files by reason, biggest group first:
// "1,794 skipped: 1,735 binary, 59 not a JSON object".
func skippedSummary(count int, skipped []corpus.Skip) string {
	byReason := map[string]int{}
	for _, s := range skipped {
		byReason[reasonKind(s.Reason)]++
	}
	reasons := make([]string, 0, len(byReason))
	for r := range byReason {
		reasons = append(reasons, r)
	}
	sort.Slice(reasons, func(i, j int) bool {
		if byReason[reasons[i]] != byReason[reasons[j]] {
			return byReason[reasons[i]] > byReason[reasons[j]]
		}
		return reasons[i] < reasons[j]
	})
	parts := make([]string, 0, len(reasons)+1)
	for i, r := range reasons {
		if i == 4 {
			parts = append(parts, "...")
			break
		}
		parts = append(parts, fmt.Sprintf("%s %s", commas(int64(byReason[r])), r))
	}
	if listed := len(skipped); listed < count {
		parts = append(parts, fmt.Sprintf("%s more not listed", commas(int64(count-listed))))
	}
	return fmt.Sprintf("%s skipped: %s; --format json lists them", commas(int64(count)), strings.Join(parts, ", "))
}

// reasonKind shortens a skip reason to its kind, without the details that
// differ from file to file ("not a JSON object: invalid character..." ->
// "not a JSON object").
func reasonKind(reason string) string {
	kind, _, _ := strings.Cut(reason, ":")
	kind, _, _ = strings.Cut(kind, " (")
	return strings.TrimSpace(kind)
}

// writeJSON writes v as indented JSON.
func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// drillResult is `drill --format json`.
type drillResult struct {
	Passed          bool           `json:"passed"`
	Problems        []string       `json:"problems"`
	Model           string         `json:"model"`
	Documents       int64          `json:"documents"`
	PartsAtKill     int            `json:"parts_at_kill"`
	RequestsAtKill  int            `json:"billed_requests_at_kill"`
	Predicted       drillFigures   `json:"predicted"`
	Actual          drillFigures   `json:"actual"`
	LedgerTokens    int64          `json:"ledger_tokens"`
	LedgerCostUSD   pricing.Micros `json:"ledger_cost_usd"`
	ChunksPaidTwice int            `json:"chunks_paid_twice"`
	Verify          drillVerify    `json:"verify"`
	// Restore is the restore step of drill --restore-to (drill_restore.go).
	Restore *drillRestoreResult `json:"restore,omitempty"`
}

// drillFigures are the predicted or actual figures of a drill.
type drillFigures struct {
	Chunks          int64          `json:"chunks"`
	Tokens          int64          `json:"tokens"`
	Requests        int64          `json:"requests"`
	CostUSD         pricing.Micros `json:"cost_usd"`
	DurationSeconds float64        `json:"duration_seconds"`
}

// drillVerify is the verify step of a drill.
type drillVerify struct {
	Expected   int `json:"expected"`
	Present    int `json:"present"`
	Missing    int `json:"missing"`
	Stale      int `json:"stale"`
	Duplicates int `json:"duplicates"`
}
