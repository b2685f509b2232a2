package embedder_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/reembed/reembed/embedder"
)

// TestAPIKeyNeverLeaks: the key is absent from every log line (text and
// JSON handlers), every error string, every formatting verb, JSON, the
// simulator's answers and its ledger, including when a provider echoes it.
func TestAPIKeyNeverLeaks(t *testing.T) {
	t.Parallel()
	const clientKey = "sk-proj-CLIENTSECRET0123456789abcdef"
	const simKey = "sk-proj-SIMULATORSECRET9876543210fedcba"
	secrets := []string{clientKey, simKey, "CLIENTSECRET", "SIMULATORSECRET"}

	var logs bytes.Buffer
	logger := slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	jsonLogger := slog.New(slog.NewJSONHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	var outputs bytes.Buffer // everything else a user or operator could see

	sim := newSim(t, embedder.SimulatorConfig{APIKey: simKey, Logger: logger, Fault429: 0.5, Seed: 3})
	srv := httptest.NewServer(sim)
	t.Cleanup(srv.Close)
	// A provider that echoes the key it was sent in its error message, as
	// OpenAI does (masked) in its 401s.
	echo := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(401)
		fmt.Fprintf(w, `{"error":{"message":"Incorrect API key provided: %s (sk-proj-CLI***cdef).","type":"invalid_request_error","param":null,"code":"invalid_api_key"}}`,
			strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer "))
	}))
	t.Cleanup(echo.Close)

	for _, tc := range []struct {
		name, url string
		key       embedder.APIKey
	}{
		{"WrongKey", srv.URL + "/v1", clientKey},
		{"RightKey", srv.URL + "/v1", simKey},
		{"EchoingProvider", echo.URL, clientKey},
	} {
		cfg := embedder.OpenAIConfig{BaseURL: tc.url, Model: "text-embedding-3-small", APIKey: tc.key, Timeout: time.Second}
		o := newOpenAI(t, cfg)
		l := newRateLimited(t, o, embedder.RateLimitConfig{Logger: logger})
		r := newRetrying(t, l, embedder.RetryConfig{Logger: logger, MaxAttempts: 2, MaxRateLimited: 1, BaseDelay: time.Millisecond})
		// Printing or logging the embedders themselves (unexported fields hold
		// the key, and go-openai's client holds it as a plain string).
		for _, v := range []any{o, *o, l, r, sim} {
			fmt.Fprintf(&outputs, "%v %+v %#v %s\n", v, v, v, v)
			logger.Info("embedder", "e", v)
			jsonLogger.Info("embedder", "e", v)
		}
		var unauthorized int
		for range 4 { // some meet a simulated 429
			_, err := r.Embed(t.Context(), &embedder.Request{Inputs: chunks(t, "doc", 1)})
			if pe, ok := errors.AsType[*embedder.ProviderError](err); ok && pe.Status == 401 {
				unauthorized++
			}
			if err != nil {
				fmt.Fprintf(&outputs, "%s: %v | %+v | %#v\n", tc.name, err, err, err)
				if pe, ok := errors.AsType[*embedder.ProviderError](err); ok {
					fmt.Fprintf(&outputs, "%s %s %s\n", pe.Message, pe.Code, pe.Param)
				}
				logger.Error("embedding failed", "err", err, "config", cfg)
				jsonLogger.Error("embedding failed", "err", err, "config", cfg, "key", tc.key)
			}
		}
		if tc.name == "WrongKey" && unauthorized != 4 {
			t.Fatalf("a wrong key was answered 401 %d times of 4", unauthorized)
		}
		logger.Info("configured", "api_key", tc.key, "config", cfg)
		jsonLogger.Info("configured", "api_key", tc.key, "config", cfg, "ptr", &cfg)
		for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%q", "%x", "%X", "%d"} {
			fmt.Fprintf(&outputs, verb+" "+verb+"\n", tc.key, cfg)
		}
		b, err := json.Marshal(cfg)
		if err != nil {
			t.Fatal(err)
		}
		outputs.Write(b)
		tb, _ := tc.key.MarshalText()
		outputs.Write(tb)
		outputs.WriteString(tc.key.String() + tc.key.GoString())
	}
	// Raw answers of the simulator: a wrong key, no key, the ledger.
	for _, key := range []string{clientKey, ""} {
		_, _, body := post(t, srv.URL+"/v1/embeddings", key, `{"model":"m","input":"hi"}`)
		outputs.Write(body)
	}
	resp, err := http.Get(srv.URL + "/v1/ledger")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	outputs.Write(b)

	if !strings.Contains(outputs.String(), "401") || !strings.Contains(outputs.String(), "[redacted]") {
		t.Fatalf("the test did not see the failures it provokes:\n%s", outputs.String())
	}
	for _, s := range secrets {
		if strings.Contains(logs.String(), s) {
			t.Errorf("logs contain %q:\n%s", s, logs.String())
		}
		if strings.Contains(outputs.String(), s) {
			t.Errorf("outputs contain %q:\n%s", s, outputs.String())
		}
	}
	if strings.Contains(outputs.String(), "CLI***") {
		t.Errorf("a provider's masked key came through: %s", outputs.String())
	}
}
