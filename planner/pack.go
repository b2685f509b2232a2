package planner

// Packer packs chunks, in order, into requests under a model's per-request
// limits. It is the one packing function: the estimate counts requests with
// it and the rebuild cuts its batches with it, so the predicted request count
// is exact. A chunk goes into the current request unless that would exceed
// MaxInputs inputs or MaxTokens tokens; then it starts a new request. A Packer
// is not safe for concurrent use.
type Packer struct {
	// MaxInputs is the most inputs per request (≥ 1).
	MaxInputs int
	// MaxTokens is the most tokens per request; 0 means no limit.
	MaxTokens int

	inputs   int
	tokens   int64
	requests int64
}

// NewPacker returns a Packer for the given limits. A batchSize > 0 lowers the
// model's inputs per request, and tpm > 0 lowers the tokens per request (a
// request larger than the per-minute limit could never be sent).
func NewPacker(maxInputs, maxTokensPerRequest, batchSize, tpm int) *Packer {
	p := &Packer{MaxInputs: maxInputs, MaxTokens: maxTokensPerRequest}
	if batchSize > 0 && batchSize < p.MaxInputs {
		p.MaxInputs = batchSize
	}
	if p.MaxInputs < 1 {
		p.MaxInputs = 1
	}
	if tpm > 0 && (p.MaxTokens == 0 || tpm < p.MaxTokens) {
		p.MaxTokens = tpm
	}
	return p
}

// Add places a chunk of the given billed tokens and reports whether it starts
// a new request (so the chunks before it form a finished request).
func (p *Packer) Add(tokens int) (startsRequest bool) {
	if p.inputs > 0 && p.inputs < p.MaxInputs && (p.MaxTokens == 0 || p.tokens+int64(tokens) <= int64(p.MaxTokens)) {
		p.inputs++
		p.tokens += int64(tokens)
		return false
	}
	p.inputs, p.tokens = 1, int64(tokens)
	p.requests++
	return true
}

// Requests returns the number of requests started so far.
func (p *Packer) Requests() int64 { return p.requests }

// state is the packer's position inside its current request.
type packState struct {
	inputs int
	tokens int64
}

func (p *Packer) state() packState { return packState{p.inputs, p.tokens} }

// AddRepeated packs the same sequence of chunk token counts n times, as if Add
// were called for each, in time independent of n: the packer's state at the
// start of each repetition is eventually periodic, so whole periods are
// skipped. It serves what-if estimates of millions of identical documents.
func (p *Packer) AddRepeated(chunks []int, n int64) {
	if len(chunks) == 0 || n <= 0 {
		return
	}
	step := func(q *Packer) {
		for _, t := range chunks {
			q.Add(t)
		}
	}
	// Brent's cycle detection on the state at each repetition's start.
	power, lam := int64(1), int64(1)
	tort := *p
	hare := *p
	step(&hare)
	done := int64(1)
	for tort.state() != hare.state() && done < n {
		if power == lam {
			tort = hare
			power *= 2
			lam = 0
		}
		step(&hare)
		done++
		lam++
	}
	if done >= n || tort.state() != hare.state() {
		*p = hare
		return
	}
	// hare is lam repetitions after tort with the same state: a period of lam.
	perPeriod := hare.requests - tort.requests
	skip := (n - done) / lam
	hare.requests += skip * perPeriod
	done += skip * lam
	for ; done < n; done++ {
		step(&hare)
	}
	*p = hare
}
