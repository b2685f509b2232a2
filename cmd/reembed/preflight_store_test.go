package main

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/johannesboyne/gofakes3"
	"github.com/johannesboyne/gofakes3/backend/s3mem"
)

// refusingS3 is an in-process S3 (gofakes3) that answers 403 AccessDenied to
// the methods in refuse, and counts the PUTs it lets through.
func refusingS3(t *testing.T, refuse ...string) (out string, backend *s3mem.Backend, puts *atomic.Int64) {
	t.Helper()
	backend = s3mem.New()
	if err := backend.CreateBucket("reembed"); err != nil {
		t.Fatal(err)
	}
	inner := gofakes3.New(backend).Server()
	puts = new(atomic.Int64)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		for _, m := range refuse {
			if r.Method == m {
				w.Header().Set("Content-Type", "application/xml")
				w.WriteHeader(http.StatusForbidden)
				w.Write([]byte(`<?xml version="1.0" encoding="UTF-8"?><Error><Code>AccessDenied</Code><Message>Access Denied</Message></Error>`))
				return
			}
		}
		if r.Method == http.MethodPut {
			puts.Add(1)
		}
		inner.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	for k, v := range map[string]string{"AWS_ACCESS_KEY_ID": "test-access-key", "AWS_SECRET_ACCESS_KEY": "test-SECRET-key",
		"AWS_EC2_METADATA_DISABLED": "true", "AWS_CONFIG_FILE": "/dev/null", "AWS_SHARED_CREDENTIALS_FILE": "/dev/null"} {
		t.Setenv(k, v)
	}
	out = "s3://reembed/runs/r1?region=us-east-1&use_path_style=true&disable_https=true" +
		"&request_checksum_calculation=when_required&response_checksum_validation=when_required&endpoint=" + srv.URL
	return out, backend, puts
}

// objects lists the keys in the fake bucket.
func objects(t *testing.T, backend *s3mem.Backend) []string {
	t.Helper()
	list, err := backend.ListBucket("reembed", &gofakes3.Prefix{}, gofakes3.ListBucketPage{})
	if err != nil {
		t.Fatal(err)
	}
	var keys []string
	for _, c := range list.Contents {
		keys = append(keys, c.Key)
	}
	return keys
}

// TestPreflightProbesObjectStorage: an object-storage --out that refuses
// writes (or deletes) fails the rebuild with exit 2 naming --out before a
// request is sent; a writable one passes and keeps no probe object.
func TestPreflightProbesObjectStorage(t *testing.T) {
	dir := smallCorpus(t)
	for _, tc := range []struct {
		name, refuse, want string
	}{
		{"ReadOnly", http.MethodPut, "is not writable"},
		{"NoDelete", http.MethodDelete, "cannot be deleted"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out, backend, _ := refusingS3(t, tc.refuse)
			url, hits := countingServer(t)
			code, _, errOut := runEnv(t, map[string]string{"K": "sk-test"}, "rebuild", dir, "--out", out,
				"--provider", "openai", "--base-url", url, "--api-key-env", "K")
			if code != exitUsage || !strings.Contains(errOut, "--out s3://reembed/runs/r1") || !strings.Contains(errOut, tc.want) || hits.Load() != 0 {
				t.Errorf("exit %d, %d requests sent, stderr %q; want 2 naming --out and %q, none sent", code, hits.Load(), errOut, tc.want)
			}
			if strings.Contains(errOut, "endpoint=") || strings.Contains(errOut, "SECRET") {
				t.Errorf("the error shows the URL's query or a secret: %q", errOut)
			}
			if tc.refuse == http.MethodPut {
				if keys := objects(t, backend); len(keys) != 0 {
					t.Errorf("a refused bucket holds %q", keys)
				}
			}
		})
	}
	t.Run("Writable", func(t *testing.T) {
		out, backend, puts := refusingS3(t)
		code, stdout, errOut := runMain(t, "rebuild", dir, "--out", out, "--dry-run")
		if code != exitOK || !strings.Contains(stdout, "Dry run") {
			t.Fatalf("dry run on a writable bucket: exit %d, stderr %q", code, errOut)
		}
		if puts.Load() == 0 {
			t.Errorf("no object was written: the bucket was not probed")
		}
		if keys := objects(t, backend); len(keys) != 0 {
			t.Errorf("the probe left %q", keys)
		}
	})
}
