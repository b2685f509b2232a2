package api

import (
	"context"
	"errors"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/reembed/reembed/embedder"
	"github.com/reembed/reembed/planner/jobs"
	"github.com/reembed/reembed/pricing"
)

// Metrics is the server's Prometheus registry (its own, not the global
// one) and the embedder decorators that feed it. Metric names, all with the
// reembed_ prefix, are listed in README.md. It is safe for concurrent use.
type Metrics struct {
	reg *prometheus.Registry

	batches     prometheus.Counter
	tokens      prometheus.Counter
	cost        prometheus.Counter
	attempts    *prometheus.CounterVec
	rateLimited prometheus.Counter
	retries     prometheus.Counter
	http        *prometheus.HistogramVec

	mu         sync.Mutex
	batchSrc   func() map[string]int     // batches by state, at scrape time
	restoreSrc func() map[jobs.State]int // restore jobs by state, at scrape time
	now        func() time.Time
	rpm, tpm   int
	window     [60]second // requests and tokens sent, per second of the last minute
}

type second struct {
	at       int64 // unix second
	requests int64
	tokens   int64
}

// NewMetrics registers the metrics. jobCounts reports jobs by state at each
// scrape; rpm and tpm are the limits utilisation is measured against
// (0 = unknown, utilisation reads 0). now is the clock (nil: time.Now).
func NewMetrics(jobCounts func() map[jobs.State]int, rpm, tpm int, now func() time.Time) *Metrics {
	if now == nil {
		now = time.Now
	}
	m := &Metrics{reg: prometheus.NewRegistry(), now: now, rpm: rpm, tpm: tpm}
	f := func(name, help string) prometheus.Counter {
		c := prometheus.NewCounter(prometheus.CounterOpts{Name: name, Help: help})
		m.reg.MustRegister(c)
		return c
	}
	m.batches = f("reembed_embed_batches_total", "Batches the rebuild jobs sent to the embedder (each may take several attempts).")
	m.tokens = f("reembed_embed_billed_tokens_total", "Tokens the provider billed, over all jobs.")
	m.cost = f("reembed_embed_cost_usd_total", "Cost of the billed tokens in US dollars, at the catalog price.")
	m.rateLimited = f("reembed_embed_rate_limited_total", "Provider answers 429 (rate limited), retried after retry-after.")
	m.retries = f("reembed_embed_retries_total", "Attempts beyond the first of a batch (429, 5xx, timeouts, resets); the halves of a batch split for its size are new requests, not retries.")
	m.attempts = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "reembed_embed_requests_total",
		Help: "HTTP requests (attempts) sent to the provider, by outcome: ok, rate_limited, error."}, []string{"outcome"})
	m.http = prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "reembed_http_request_duration_seconds",
		Help:    "Latency of the API's answers, by method, route and status.",
		Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 5}}, []string{"method", "route", "code"})
	m.reg.MustRegister(m.attempts, m.http,
		&jobsCollector{counts: jobCounts, desc: prometheus.NewDesc("reembed_jobs", "Rebuild jobs by state.", []string{"state"}, nil)},
		&jobsCollector{counts: m.restoreCounts, desc: prometheus.NewDesc("reembed_restores", "Restore jobs by state (none without restore jobs).", []string{"state"}, nil)},
		&batchesCollector{m: m, desc: prometheus.NewDesc("reembed_batches", batchesHelp, []string{"state"}, nil)},
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "reembed_rate_limit_utilization", Help: utilHelp,
			ConstLabels: prometheus.Labels{"limit": "rpm"}}, func() float64 { return m.utilization(false) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "reembed_rate_limit_utilization", Help: utilHelp,
			ConstLabels: prometheus.Labels{"limit": "tpm"}}, func() float64 { return m.utilization(true) }),
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	)
	return m
}

// SetRestoreSource sets where reembed_restores{state} is read at scrape
// time: the restore job manager's counts.
func (m *Metrics) SetRestoreSource(counts func() map[jobs.State]int) {
	m.mu.Lock()
	m.restoreSrc = counts
	m.mu.Unlock()
}

// restoreCounts reads the restore source, nil when there is none.
func (m *Metrics) restoreCounts() map[jobs.State]int {
	m.mu.Lock()
	src := m.restoreSrc
	m.mu.Unlock()
	if src == nil {
		return nil
	}
	return src()
}

// Registry returns the registry /metrics serves.
func (m *Metrics) Registry() *prometheus.Registry { return m.reg }

// SetLimits changes the limits utilisation is measured against.
func (m *Metrics) SetLimits(rpm, tpm int) {
	m.mu.Lock()
	m.rpm, m.tpm = rpm, tpm
	m.mu.Unlock()
}

// utilization is the fraction of the RPM (or TPM) limit used in the last 60s.
func (m *Metrics) utilization(tokens bool) float64 {
	m.mu.Lock()
	defer m.mu.Unlock()
	limit := m.rpm
	if tokens {
		limit = m.tpm
	}
	if limit <= 0 {
		return 0
	}
	now := m.now().Unix()
	var sum int64
	for _, s := range m.window {
		if now-s.at < 60 {
			if tokens {
				sum += s.tokens
			} else {
				sum += s.requests
			}
		}
	}
	return float64(sum) / float64(limit)
}

func (m *Metrics) sent(tokens int) {
	m.mu.Lock()
	defer m.mu.Unlock()
	now := m.now().Unix()
	s := &m.window[now%60]
	if s.at != now {
		*s = second{at: now}
	}
	s.requests++
	s.tokens += int64(tokens)
}

const utilHelp = "Fraction of the provider limit used in the last minute: requests over RPM (limit=rpm), tokens over TPM (limit=tpm); 0 when the limit is unknown."

type attemptsKey struct{}

// batchAttempts follows the requests sent for one batch: the same request
// sent again is a retry; the halves of a batch split for its size are not.
type batchAttempts struct{ last *embedder.Request }

// Batches wraps the whole embedder stack of a job (outside the retries): it
// counts batches, billed tokens and their cost at pricePer1M micro-dollars
// per million tokens (rounded up per request, as the job's budget does).
func (m *Metrics) Batches(inner embedder.Embedder, pricePer1M pricing.Micros) embedder.Embedder {
	return embedFunc(func(ctx context.Context, req *embedder.Request) (*embedder.Result, error) {
		m.batches.Inc()
		res, err := inner.Embed(context.WithValue(ctx, attemptsKey{}, &batchAttempts{}), req)
		if err == nil && res != nil {
			billed := res.Usage.PromptTokens
			if billed == 0 {
				billed = res.Usage.TotalTokens
			}
			m.tokens.Add(float64(billed))
			m.cost.Add(pricing.CostCeil(int64(billed), pricePer1M).USD())
		}
		return res, err
	})
}

// Attempts wraps the provider (inside the rate limiter): it counts every
// request sent, its outcome, 429s, retries, and what the limits'
// utilisation is measured on.
func (m *Metrics) Attempts(inner embedder.Embedder) embedder.Embedder {
	return embedFunc(func(ctx context.Context, req *embedder.Request) (*embedder.Result, error) {
		if a, ok := ctx.Value(attemptsKey{}).(*batchAttempts); ok { // a batch's attempts are sequential
			if a.last == req {
				m.retries.Inc()
			}
			a.last = req
		}
		tokens := 0
		for _, in := range req.Inputs {
			tokens += in.Tokens
		}
		m.sent(tokens)
		res, err := inner.Embed(ctx, req)
		switch {
		case err == nil:
			m.attempts.WithLabelValues("ok").Inc()
		case errors.Is(err, embedder.ErrRateLimited):
			m.attempts.WithLabelValues("rate_limited").Inc()
			m.rateLimited.Inc()
		default:
			m.attempts.WithLabelValues("error").Inc()
		}
		return res, err
	})
}

// observeHTTP records one answer's latency.
func (m *Metrics) observeHTTP(method, route string, code int, d time.Duration) {
	m.http.WithLabelValues(method, route, strconv.Itoa(code)).Observe(d.Seconds())
}

// embedFunc adapts a function to embedder.Embedder.
type embedFunc func(ctx context.Context, req *embedder.Request) (*embedder.Result, error)

func (f embedFunc) Embed(ctx context.Context, req *embedder.Request) (*embedder.Result, error) {
	return f(ctx, req)
}

// jobsCollector reports a gauge of jobs by state (reembed_jobs,
// reembed_restores) from a job manager at scrape time; nothing when counts
// is nil or returns nil.
type jobsCollector struct {
	counts func() map[jobs.State]int
	desc   *prometheus.Desc
}

func (c *jobsCollector) Describe(ch chan<- *prometheus.Desc) { ch <- c.desc }

func (c *jobsCollector) Collect(ch chan<- prometheus.Metric) {
	if c.counts == nil {
		return
	}
	counts := c.counts()
	if counts == nil {
		return
	}
	for _, s := range jobs.States {
		ch <- prometheus.MustNewConstMetric(c.desc, prometheus.GaugeValue, float64(counts[s]), string(s))
	}
}

const batchesHelp = "Provider batches of the rebuild jobs in mode batch or auto, by state, as each job's checkpoint journal last showed them: planned, uploaded, creating (before the provider knows them), then the provider's status (validating, in_progress, finalizing, completed, failed, expired, cancelling, cancelled), or not_submitted (taken over by the sync fallback)."

// BatchStates are the batch states reembed_batches always reports (0 when
// none); others seen are reported too.
var BatchStates = []string{"planned", "uploaded", "creating", "validating", "in_progress", "finalizing", "completed",
	"failed", "expired", "cancelling", "cancelled", "not_submitted"}

// SetBatchSource sets what reembed_batches reports at each scrape: batches
// by state ([New] sets it to the job manager's jobs).
func (m *Metrics) SetBatchSource(f func() map[string]int) {
	m.mu.Lock()
	m.batchSrc = f
	m.mu.Unlock()
}

// batchesCollector reports reembed_batches{state} at scrape time.
type batchesCollector struct {
	m    *Metrics
	desc *prometheus.Desc
}

func (c *batchesCollector) Describe(ch chan<- *prometheus.Desc) { ch <- c.desc }

func (c *batchesCollector) Collect(ch chan<- prometheus.Metric) {
	c.m.mu.Lock()
	src := c.m.batchSrc
	c.m.mu.Unlock()
	counts := map[string]int{}
	if src != nil {
		counts = src()
	}
	for _, s := range BatchStates {
		ch <- prometheus.MustNewConstMetric(c.desc, prometheus.GaugeValue, float64(counts[s]), s)
	}
	for s, n := range counts {
		if !slices.Contains(BatchStates, s) {
			ch <- prometheus.MustNewConstMetric(c.desc, prometheus.GaugeValue, float64(n), s)
		}
	}
}

// batchCounts sums the batches by state of every job's latest progress.
func batchCounts(jm JobManager) map[string]int {
	out := map[string]int{}
	for _, j := range jm.List() {
		if b := j.Progress.Batch; b != nil {
			for s, n := range b.Batches {
				out[s] += n
			}
		}
	}
	return out
}
