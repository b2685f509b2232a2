package main

import (
	"bytes"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"
)

// TestKubernetesManifests checks that deploy/kubernetes parses, runs an
// Indexed Job, and passes the container only flags rebuild accepts, with the
// ConfigMap's values substituted, and that the completion index becomes the shard.
func TestKubernetesManifests(t *testing.T) {
	dir := filepath.Join("..", "..", "deploy", "kubernetes")
	read := func(name string) map[string]any {
		t.Helper()
		b, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		var m map[string]any
		if err := yaml.Unmarshal(b, &m); err != nil {
			t.Fatalf("%s does not parse: %v", name, err)
		}
		return m
	}
	cm := read("configmap.yaml")
	read("secret.yaml")
	job := read("job.yaml")
	if job["kind"] != "Job" {
		t.Fatalf("job.yaml kind = %v, want Job", job["kind"])
	}
	spec := job["spec"].(map[string]any)
	if spec["completionMode"] != "Indexed" {
		t.Errorf("completionMode = %v, want Indexed", spec["completionMode"])
	}
	completions := spec["completions"].(int)
	containers := spec["template"].(map[string]any)["spec"].(map[string]any)["containers"].([]any)
	c := containers[0].(map[string]any)
	var args []string
	for _, a := range c["args"].([]any) {
		args = append(args, a.(string))
	}
	if args[0] != "rebuild" {
		t.Fatalf("container runs %q, want rebuild", args[0])
	}
	data := cm["data"].(map[string]any)
	ref := regexp.MustCompile(`\$\(([A-Z_]+)\)`)
	for i, a := range args {
		args[i] = ref.ReplaceAllStringFunc(a, func(m string) string {
			name := ref.FindStringSubmatch(m)[1]
			v, ok := data[name]
			if !ok {
				t.Errorf("arg %q refers to $(%s), which the ConfigMap lacks", a, name)
			}
			s, _ := v.(string)
			return s
		})
	}
	var out bytes.Buffer
	// The pod's environment: what Kubernetes sets (the index only), the
	// container's own env, and the secret's key.
	vars := map[string]string{"JOB_COMPLETION_INDEX": "2", "OPENAI_API_KEY": "k"}
	envList, _ := c["env"].([]any)
	for _, v := range envList {
		kv := v.(map[string]any)
		vars[kv["name"].(string)], _ = kv["value"].(string)
	}
	e := &env{stdout: &out, stderr: &out, getenv: func(k string) string { return vars[k] }}
	fs, f := newRebuildFlagSet(e)
	if err := fs.Parse(args[1:]); err != nil {
		t.Fatalf("rebuild rejects the manifest's args: %v\n%s", err, out.String())
	}
	if got := fs.Args(); len(got) != 1 || got[0] != "/corpus" {
		t.Errorf("corpus args = %q, want [/corpus]", got)
	}
	rs, _, _, err := f.spec(e, fs.Args())
	if err != nil {
		t.Fatalf("rebuild rejects the manifest's values: %v", err)
	}
	if rs.Shard.Index != 2 || rs.Shard.Count != completions {
		t.Errorf("shard = %d/%d, want 2/%d from JOB_COMPLETION_INDEX", rs.Shard.Index, rs.Shard.Count, completions)
	}
	// A manifest that forgets the count is refused, naming the variable.
	delete(vars, "JOB_COMPLETIONS")
	if _, _, _, err := f.spec(e, fs.Args()); err == nil || !strings.Contains(err.Error(), "JOB_COMPLETIONS") {
		t.Errorf("without JOB_COMPLETIONS: err = %v, want a usage error naming it", err)
	}
}
