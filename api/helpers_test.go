package api_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"io/fs"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/getkin/kin-openapi/routers/legacy"

	"github.com/reembed/reembed/api"
	"github.com/reembed/reembed/embedder"
	"github.com/reembed/reembed/embedder/embeddertest"
	"github.com/reembed/reembed/planner"
	"github.com/reembed/reembed/planner/jobs"
	"github.com/reembed/reembed/pricing"
)

// gate holds every embed call until it is opened; calls reports each call.
type gate struct {
	open  chan struct{}
	calls chan struct{}
	once  sync.Once
}

func newGate() *gate { return &gate{open: make(chan struct{}), calls: make(chan struct{}, 1000)} }

func (g *gate) release() { g.once.Do(func() { close(g.open) }) }

// env is one API under test with its job manager, data dir and corpus root.
type testEnv struct {
	srv  *api.Server
	jobs *jobs.Manager
	data string
	root string
	logs *bytes.Buffer
	gate *gate // nil: embeds answer at once
}

type envOptions struct {
	token   string
	gated   bool
	maxBody int64
}

// writeCorpus makes a corpus root with docs/*.txt, and a symlink "escape"
// that points outside it.
func writeCorpus(t *testing.T) string {
	t.Helper()
	base := t.TempDir()
	root := filepath.Join(base, "corpus")
	if err := os.MkdirAll(filepath.Join(root, "docs"), 0o755); err != nil {
		t.Fatal(err)
	}
	texts := []string{
		"Runbooks drive reembed over HTTP: estimate, start a rebuild, watch it, cancel it and resume it.",
		"Every bad input gets a 4xx with a JSON body naming the field, and unknown routes answer 404.",
		"Jobs persist in the data directory and resume after the server restarts, with no chunk paid twice.",
	}
	for i, text := range texts {
		if err := os.WriteFile(filepath.Join(root, "docs", string(rune('a'+i))+".txt"), []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	// other/docs clashes with docs: both would name their documents "docs/...".
	os.MkdirAll(filepath.Join(root, "other", "docs"), 0o755)
	os.WriteFile(filepath.Join(root, "other", "docs", "z.txt"), []byte("another z"), 0o644)
	outside := filepath.Join(base, "outside")
	os.MkdirAll(outside, 0o755)
	os.WriteFile(filepath.Join(outside, "secret.txt"), []byte("not yours"), 0o644)
	if err := os.Symlink(outside, filepath.Join(root, "escape")); err != nil {
		t.Fatal(err)
	}
	return root
}

func newEnv(t *testing.T, o envOptions) *testEnv {
	t.Helper()
	te := &testEnv{data: t.TempDir(), root: writeCorpus(t), logs: &bytes.Buffer{}}
	if o.gated {
		te.gate = newGate()
		t.Cleanup(te.gate.release)
	}
	g := te.gate
	cat, err := pricing.Builtin()
	if err != nil {
		t.Fatal(err)
	}
	factory := func(spec jobs.Spec) (embedder.Embedder, error) {
		return &embeddertest.Fake{Func: func(ctx context.Context, n int, req *embedder.Request) (*embedder.Result, error) {
			if g != nil {
				g.calls <- struct{}{}
				<-g.open
			}
			dims := spec.Dimensions
			if dims == 0 {
				m, err := cat.Lookup(spec.Model)
				if err != nil {
					return nil, err
				}
				dims = m.DefaultDimensions
			}
			return embeddertest.Vectors(req, "", dims), nil
		}}, nil
	}
	var logMu sync.Mutex
	logger := slog.New(slog.NewJSONHandler(lockedWriter{&logMu, te.logs}, &slog.HandlerOptions{Level: slog.LevelDebug}))
	mgr, err := jobs.Open(jobs.Config{DataDir: te.data, CorpusRoots: []string{te.root}, NewEmbedder: factory,
		Logger: logger, DefaultRPM: planner.DefaultRPM, DefaultTPM: planner.DefaultTPM})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if te.gate != nil {
			te.gate.release()
		}
		mgr.Shutdown(context.Background())
	})
	te.jobs = mgr
	srv, err := api.New(api.Config{Jobs: mgr, CorpusRoots: mgr.Roots(), AuthToken: embedder.APIKey(o.token), Logger: logger, MaxBodyBytes: o.maxBody})
	if err != nil {
		t.Fatal(err)
	}
	te.srv = srv
	return te
}

type lockedWriter struct {
	mu *sync.Mutex
	w  io.Writer
}

func (l lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

// request is one HTTP request of a test.
type request struct {
	method, path string
	body         string
	header       map[string]string
}

// serve sends r through the server (routing, middleware, error handler).
func (te *testEnv) serve(t *testing.T, r request) *httptest.ResponseRecorder {
	t.Helper()
	req := httptest.NewRequestWithContext(t.Context(), r.method, r.path, strings.NewReader(r.body))
	if r.body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	for k, v := range r.header {
		if v == "" {
			req.Header.Del(k)
		} else {
			req.Header.Set(k, v)
		}
	}
	rec := httptest.NewRecorder()
	te.srv.ServeHTTP(rec, req)
	return rec
}

// contract validates requests and responses against openapi.yaml.
type contract struct {
	doc    *openapi3.T
	router routers.Router
}

func loadContract(t *testing.T) *contract {
	t.Helper()
	loader := openapi3.NewLoader()
	doc, err := loader.LoadFromData(api.OpenAPI)
	if err != nil {
		t.Fatalf("loading openapi.yaml: %v", err)
	}
	if err := doc.Validate(loader.Context); err != nil {
		t.Fatalf("openapi.yaml is not valid OpenAPI: %v", err)
	}
	doc.Servers = nil // match any host
	router, err := legacy.NewRouter(doc)
	if err != nil {
		t.Fatal(err)
	}
	return &contract{doc: doc, router: router}
}

// check sends r, and validates the request and the response against the
// spec: the status must be documented and the body match its schema.
func (c *contract) check(t *testing.T, te *testEnv, r request) *httptest.ResponseRecorder {
	t.Helper()
	rec := te.serve(t, r)
	req := httptest.NewRequestWithContext(t.Context(), r.method, r.path, strings.NewReader(r.body))
	if r.body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	for k, v := range r.header {
		req.Header.Set(k, v)
	}
	route, params, err := c.router.FindRoute(req)
	if err != nil {
		t.Fatalf("%s %s: not in openapi.yaml: %v", r.method, r.path, err)
	}
	opts := &openapi3filter.Options{AuthenticationFunc: openapi3filter.NoopAuthenticationFunc, IncludeResponseStatus: true, MultiError: true}
	in := &openapi3filter.RequestValidationInput{Request: req, PathParams: params, Route: route, Options: opts}
	if rec.Code < 400 {
		if err := openapi3filter.ValidateRequest(t.Context(), in); err != nil {
			t.Errorf("%s %s: request does not match openapi.yaml: %v", r.method, r.path, err)
		}
	}
	out := &openapi3filter.ResponseValidationInput{RequestValidationInput: in, Status: rec.Code, Header: rec.Header(),
		Body: io.NopCloser(bytes.NewReader(rec.Body.Bytes())), Options: opts}
	if err := openapi3filter.ValidateResponse(t.Context(), out); err != nil {
		t.Errorf("%s %s: %d response does not match openapi.yaml: %v\n%s", r.method, r.path, rec.Code, err, trim(rec.Body.String()))
	}
	return rec
}

func trim(s string) string {
	if len(s) > 2000 {
		return s[:2000] + "..."
	}
	return s
}

// decode decodes a response body.
func decode[T any](t *testing.T, rec *httptest.ResponseRecorder) T {
	t.Helper()
	var v T
	if err := json.Unmarshal(rec.Body.Bytes(), &v); err != nil {
		t.Fatalf("decoding %q: %v", trim(rec.Body.String()), err)
	}
	return v
}

type errorBody struct {
	Error struct {
		Code    string `json:"code"`
		Message string `json:"message"`
		Field   *string
	} `json:"error"`
}

// listing returns every file under dir with its size: what a bad request
// must leave unchanged.
func listing(t *testing.T, dir string) []string {
	t.Helper()
	var out []string
	filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, path)
		size := info.Size()
		if d.IsDir() {
			size = 0
		}
		out = append(out, rel+" "+info.Mode().String()+" "+string(rune('0'+size%10))+" "+info.ModTime().String())
		return nil
	})
	sort.Strings(out)
	return out
}

func mustStatus(t *testing.T, rec *httptest.ResponseRecorder, want int) {
	t.Helper()
	if rec.Code != want {
		t.Fatalf("status %d, want %d: %s", rec.Code, want, trim(rec.Body.String()))
	}
}

// submit starts a rebuild of docs and returns the job.
func (te *testEnv) submit(t *testing.T, c *contract, body string, header map[string]string) jobs.Job {
	t.Helper()
	rec := c.check(t, te, request{method: http.MethodPost, path: "/v1/rebuilds", body: body, header: header})
	mustStatus(t, rec, http.StatusAccepted)
	return decode[jobs.Job](t, rec)
}

const smallRebuild = `{"paths":["docs"],"model":"text-embedding-3-small","dimensions":8,"chunk_tokens":8,"chunk_overlap":0,"batch_size":2,"part_rows":2,"concurrency":1}`
