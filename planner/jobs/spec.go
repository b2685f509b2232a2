package jobs

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/reembed/reembed/corpus"
	"github.com/reembed/reembed/planner"
	"github.com/reembed/reembed/pricing"
)

// Causes of the [planner.FieldError]s a [Spec] is refused with, beyond a
// bad value: the API answers each with its own error code. Match them
// with errors.Is.
var (
	// ErrMissing: a required field is absent.
	ErrMissing = errors.New("missing field")
	// ErrConflict: two fields that exclude each other are both given.
	ErrConflict = errors.New("conflicting fields")
	// ErrType: a field has the wrong JSON type.
	ErrType = errors.New("wrong type")
)

// Duration is a [Spec] duration: a JSON string such as "4h" or "250ms"
// (Go's time.ParseDuration), written back as time.Duration.String.
type Duration time.Duration

// D returns d as a time.Duration.
func (d Duration) D() time.Duration { return time.Duration(d) }

// MarshalJSON writes d as a duration string, e.g. "4h0m0s".
func (d Duration) MarshalJSON() ([]byte, error) { return json.Marshal(time.Duration(d).String()) }

// UnmarshalJSON reads a duration string (Spec.UnmarshalJSON reads its
// fields itself, to name the field of a bad value).
func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return fmt.Errorf("duration %s is not a string such as \"4h\": %w", b, err)
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return fmt.Errorf("duration %q: %w", s, err)
	}
	*d = Duration(v)
	return nil
}

// specWire is the JSON of a [Spec] as a client may send it: the fields
// whose absence, type or spelling matter are read raw, then checked.
type specWire struct {
	plainSpec
	Model           json.RawMessage `json:"model"`
	ChunkTokens     *int            `json:"chunk_tokens"`
	ChunkOverlap    *int            `json:"chunk_overlap"`
	Concurrency     *int            `json:"concurrency"`
	BudgetUSD       json.RawMessage `json:"budget_usd"`
	FlushInterval   *string         `json:"flush_interval"`
	FlushIntervalMS *int64          `json:"flush_interval_ms"`
	RTO             *string         `json:"rto"`
	BatchP50        *string         `json:"batch_p50"`
	BatchP90        *string         `json:"batch_p90"`
	BatchPollMin    *string         `json:"batch_poll_min"`
	BatchPollMax    *string         `json:"batch_poll_max"`
}

// plainSpec is Spec without its methods (so decoding it does not recurse).
type plainSpec Spec

// UnmarshalJSON decodes a spec strictly (unknown fields are an error) as
// the API's POST /v1/rebuilds body and job.json hold it, filling what the
// CLI's flags default: chunk_tokens 256 and chunk_overlap 32 (0 when
// chunk_tokens is 0). It also reads flush_interval ("5s"), exclusive with
// flush_interval_ms, and budget_usd as a number or a string of dollars.
// Errors are *json.UnmarshalTypeError or syntax errors from encoding/json,
// or [planner.FieldError]s; values are checked by [Spec.Validate].
func (s *Spec) UnmarshalJSON(b []byte) error {
	var w specWire
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&w); err != nil {
		if te, ok := errors.AsType[*json.UnmarshalTypeError](err); ok {
			te.Field = strings.TrimPrefix(te.Field, "plainSpec.") // the JSON field, not the Go path
		}
		return err
	}
	out := Spec(w.plainSpec)
	model, err := oneModel(w.Model)
	if err != nil {
		return err
	}
	out.Model = model
	out.ChunkTokens = intOr(w.ChunkTokens, planner.DefaultChunkTokens)
	out.ChunkOverlap = intOr(w.ChunkOverlap, planner.DefaultChunkOverlap)
	if w.ChunkOverlap == nil && out.ChunkTokens == 0 {
		out.ChunkOverlap = 0
	}
	if w.Concurrency != nil && *w.Concurrency == 0 {
		return fieldErr("concurrency", "{concurrency} must be at least 1 (omit it for the server's default)")
	}
	out.Concurrency = intOr(w.Concurrency, 0)
	if w.FlushInterval != nil && w.FlushIntervalMS != nil {
		return &planner.FieldError{Field: "flush_interval_ms", Message: "give flush_interval or flush_interval_ms, not both (JSON fields of the API only)", Err: ErrConflict}
	}
	out.FlushIntervalMS = intOr(w.FlushIntervalMS, 0)
	if w.FlushInterval != nil {
		d, err := ParseDuration("flush_interval", *w.FlushInterval)
		if err != nil {
			return err
		}
		out.FlushIntervalMS = d.D().Milliseconds()
	}
	if out.BudgetUSD, _, err = ParseBudget(w.BudgetUSD); err != nil {
		return err
	}
	for _, d := range []struct {
		field string
		raw   *string
		to    *Duration
	}{{"rto", w.RTO, &out.RTO}, {"batch_p50", w.BatchP50, &out.BatchP50}, {"batch_p90", w.BatchP90, &out.BatchP90},
		{"batch_poll_min", w.BatchPollMin, &out.BatchPollMin}, {"batch_poll_max", w.BatchPollMax, &out.BatchPollMax}} {
		if d.raw == nil {
			continue
		}
		if *d.to, err = ParseDuration(d.field, *d.raw); err != nil {
			return err
		}
	}
	*s = out
	return nil
}

// oneModel reads "model": a string, or a list of at most one (the
// estimate's shape: a rebuild embeds with one model).
func oneModel(raw json.RawMessage) (string, error) {
	if len(raw) == 0 || string(raw) == "null" {
		return "", nil
	}
	var one string
	if json.Unmarshal(raw, &one) == nil {
		return one, nil
	}
	var many []string
	if json.Unmarshal(raw, &many) != nil || len(many) > 1 {
		return "", &planner.FieldError{Field: "model", Message: "a rebuild embeds with one model; {model} must be a string", Err: ErrType}
	}
	if len(many) == 1 {
		return many[0], nil
	}
	return "", nil
}

// ParseBudget reads budget_usd, in a rebuild or in a resume: a JSON number
// or string of dollars, exactly; given is false when it is absent or null.
func ParseBudget(raw json.RawMessage) (m pricing.Micros, given bool, err error) {
	if len(raw) == 0 || string(raw) == "null" {
		return 0, false, nil
	}
	s := string(raw)
	var str string
	if json.Unmarshal(raw, &str) == nil {
		s = str
	} else if raw[0] != '-' && (raw[0] < '0' || raw[0] > '9') {
		return 0, true, &planner.FieldError{Field: "budget_usd", Message: "{budget_usd} must be a number of US dollars, e.g. 25 or 0.5", Err: ErrType}
	}
	if strings.HasPrefix(strings.TrimSpace(s), "-") {
		return 0, true, fieldErr("budget_usd", "{budget_usd} must not be negative")
	}
	m, err = pricing.ParseUSD(s)
	if err != nil {
		return 0, true, planner.NewFieldError("budget_usd", err)
	}
	return m, true, nil
}

// ParseDuration reads the duration setting field, a Go duration string
// such as "4h", not negative; errors name the field. The API reads every
// duration of its requests with it.
func ParseDuration(field, s string) (Duration, error) {
	d, err := time.ParseDuration(s)
	if err != nil {
		return 0, fieldErr(field, "{%s} %q is not a duration such as \"1s\", \"250ms\" or \"4h\"", field, s)
	}
	if d < 0 {
		return 0, fieldErr(field, "{%s} must not be negative", field)
	}
	return Duration(d), nil
}

func intOr[T any](p *T, def T) T {
	if p == nil {
		return def
	}
	return *p
}

// Validate checks what a spec says on its own, once for every way in
// (the API's body, a Go caller, a job file resumed): its errors are
// [planner.FieldError]s, joined, naming fields in snake_case. What only the
// server knows (providers configured, corpus roots, the model catalog) and
// the rebuild's own rules ([planner.RebuildSpec.Validate]) are checked when
// the job is prepared.
func (s Spec) Validate() error {
	var errs []error
	add := func(field, format string, args ...any) { errs = append(errs, fieldErr(field, format, args...)) }
	if s.Provider != "" && s.Provider != ProviderSimulated && s.Provider != ProviderOpenAI {
		add("provider", "{provider} %q: want %q or %q", s.Provider, ProviderSimulated, ProviderOpenAI)
	}
	if len(s.Paths) == 0 {
		errs = append(errs, &planner.FieldError{Field: "paths", Message: "{paths} (inside a corpus root) are required", Err: ErrMissing})
	}
	for _, f := range []struct {
		name string
		v    int64
	}{{"dimensions", int64(s.Dimensions)}, {"chunk_tokens", int64(s.ChunkTokens)}, {"chunk_overlap", int64(s.ChunkOverlap)},
		{"rpm", int64(s.RPM)}, {"tpm", int64(s.TPM)}, {"concurrency", int64(s.Concurrency)}, {"batch_size", int64(s.BatchSize)},
		{"budget_usd", int64(s.BudgetUSD)}, {"part_rows", int64(s.PartRows)}, {"flush_interval_ms", s.FlushIntervalMS},
		{"rto", int64(s.RTO)}, {"batch_p50", int64(s.BatchP50)}, {"batch_p90", int64(s.BatchP90)},
		{"batch_enqueued_tokens", s.BatchEnqueuedTokens}, {"batch_max_requests", int64(s.BatchMaxRequests)},
		{"batch_poll_min", int64(s.BatchPollMin)}, {"batch_poll_max", int64(s.BatchPollMax)}} {
		if f.v < 0 {
			add(f.name, "{%s} must not be negative", f.name)
		}
	}
	if err := (corpus.Filters{Exclude: s.Exclude}).Validate(); err != nil {
		errs = append(errs, planner.NewFieldError("exclude", err))
	}
	if err := (corpus.Filters{Include: s.Include}).Validate(); err != nil {
		errs = append(errs, planner.NewFieldError("include", err))
	}
	errs = append(errs, s.validateMode()...)
	return errors.Join(errs...)
}

// validateMode checks mode and its batch options.
func (s Spec) validateMode() []error {
	var errs []error
	switch s.Mode {
	case "", planner.ModeSync, planner.ModeBatch, planner.ModeAuto:
	default:
		errs = append(errs, fieldErr("mode", "{mode} %q: want %q, %q or %q", s.Mode, planner.ModeSync, planner.ModeBatch, planner.ModeAuto))
	}
	if s.Mode == planner.ModeAuto && s.RTO <= 0 {
		errs = append(errs, &planner.FieldError{Field: "rto", Message: "{mode} auto needs {rto}, e.g. \"4h\"", Err: ErrMissing})
	}
	if _, ok := planner.EnqueuedTokensByTier[s.BatchTier]; s.BatchTier != 0 && !ok {
		errs = append(errs, fieldErr("batch_tier", "{batch_tier} %d: want 1 to 5", s.BatchTier))
	}
	if s.BatchP50 > 0 && s.BatchP90 > 0 && s.BatchP90 < s.BatchP50 {
		errs = append(errs, fieldErr("batch_p90", "{batch_p90} must be at least {batch_p50}"))
	}
	if s.BatchPollMin > 0 && s.BatchPollMax > 0 && s.BatchPollMax < s.BatchPollMin {
		errs = append(errs, fieldErr("batch_poll_max", "{batch_poll_max} must be at least {batch_poll_min}"))
	}
	return errs
}
