package main

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/xhttpd/xhttpd/httpd"
)

// syncBuffer is a log destination that a test reads while it is written.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func readFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// logrotate's way: rename the file, then reopen; lines go to the renamed
// file until the reopen, to a new file at the path after it. A reopen that
// fails keeps the old file.
func TestLogFileReopen(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "log")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "access.log")
	l, err := openLogFile(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.f.Close() })
	l.Write([]byte("a\n"))
	if err := os.Rename(path, path+".1"); err != nil {
		t.Fatal(err)
	}
	l.Write([]byte("b\n"))
	if err := l.reopen(); err != nil {
		t.Fatal(err)
	}
	l.Write([]byte("c\n"))
	if got, got1 := readFile(t, path), readFile(t, path+".1"); got != "c\n" || got1 != "a\nb\n" {
		t.Errorf("after reopen: %q in the new file, %q in the renamed one; want \"c\\n\", \"a\\nb\\n\"", got, got1)
	}

	// The directory gone (root may write anywhere; it may not create a
	// file in a directory that does not exist): the old file stays.
	moved := dir + ".old"
	if err := os.Rename(dir, moved); err != nil {
		t.Fatal(err)
	}
	if err := l.reopen(); err == nil {
		t.Fatal("reopen in a missing directory succeeded")
	}
	if _, err := l.Write([]byte("d\n")); err != nil {
		t.Errorf("write after a failed reopen: %v", err)
	}
	if got := readFile(t, filepath.Join(moved, "access.log")); got != "c\nd\n" {
		t.Errorf("after a failed reopen the old file has %q, want \"c\\nd\\n\"", got)
	}
}

// SIGUSR1 reopens the access log, SIGHUP reloads, through the handler
// that xhttpd's signals go to; a failed reopen is logged.
func TestHandleSignals(t *testing.T) {
	var logged syncBuffer
	old := slog.Default()
	slog.SetDefault(slog.New(slog.NewTextHandler(&logged, nil)))
	t.Cleanup(func() { slog.SetDefault(old) })

	path := filepath.Join(t.TempDir(), "access.log")
	l, err := openLogFile(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.f.Close() })
	reloads := make(chan struct{}, 1)
	sigs := make(chan os.Signal)
	done := make(chan struct{})
	go func() {
		handleSignals(sigs, func() error { reloads <- struct{}{}; return nil }, l)
		close(done)
	}()

	l.Write([]byte("before\n"))
	if err := os.Rename(path, path+".1"); err != nil {
		t.Fatal(err)
	}
	sigs <- syscall.SIGUSR1
	sigs <- syscall.SIGHUP // handled after the SIGUSR1: the reopen is done
	select {
	case <-reloads:
	case <-time.After(5 * time.Second):
		t.Fatal("SIGHUP did not reload")
	}
	l.Write([]byte("after\n"))
	if got, got1 := readFile(t, path), readFile(t, path+".1"); got != "after\n" || got1 != "before\n" {
		t.Errorf("after SIGUSR1: %q in the new file, %q in the renamed one", got, got1)
	}

	// A directory that is gone: the failure is logged, the old file kept.
	l.path = filepath.Join(t.TempDir(), "no", "access.log")
	sigs <- syscall.SIGUSR1
	sigs <- syscall.SIGHUP
	<-reloads
	close(sigs)
	<-done
	if !strings.Contains(logged.String(), "access log: reopen failed") {
		t.Errorf("a failed reopen is not logged:\n%s", logged.String())
	}
	l.Write([]byte("still\n"))
	if got := readFile(t, path); got != "after\nstill\n" {
		t.Errorf("after a failed reopen: %q", got)
	}
}

// -access-log - is stdout (nothing to reopen); a file is opened, and
// returned for SIGUSR1; -access-log-format picks httpd's format.
func TestAccessLogFlags(t *testing.T) {
	base := []string{"-iface", "eth0", "-root", "/srv"}
	o, err := parseFlags(append(base, "-access-log", "-"))
	if err != nil || o.http.AccessLog != os.Stdout || o.accessLog != nil || o.http.AccessLogFormat != httpd.LogCLF {
		t.Errorf("-access-log -: writer %v, file %v, format %v (%v); want stdout, none, clf", o.http.AccessLog, o.accessLog, o.http.AccessLogFormat, err)
	}
	path := filepath.Join(t.TempDir(), "access.log")
	o, err = parseFlags(append(base, "-access-log", path, "-access-log-format", "json"))
	if err != nil || o.accessLog == nil || o.accessLog.path != path || o.http.AccessLog != o.accessLog || o.http.AccessLogFormat != httpd.LogJSON {
		t.Fatalf("-access-log FILE: file %v, format %v (%v)", o.accessLog, o.http.AccessLogFormat, err)
	}
	o.accessLog.f.Close()
	if _, err := os.Stat(path); err != nil {
		t.Error(err)
	}
	if o, err := parseFlags(append(base, "-access-log-format", "combined")); err != nil || o.http.AccessLogFormat != httpd.LogCombined {
		t.Errorf("-access-log-format combined: %v (%v)", o.http.AccessLogFormat, err)
	}
	want := `invalid value "apache" for flag -access-log-format: access log format "apache": want clf, combined or json`
	if _, err := parseFlags(append(base, "-access-log-format", "apache")); err == nil || err.Error() != want {
		t.Errorf("-access-log-format apache: %v, want %s", err, want)
	}
}

// -log-format json makes the server's own log a JSON object per line.
func TestLogFormatFlag(t *testing.T) {
	base := []string{"-iface", "eth0", "-root", "/srv"}
	if o, err := parseFlags(base); err != nil || o.logFormat != logText {
		t.Errorf("default -log-format %v (%v), want text", o.logFormat, err)
	}
	o, err := parseFlags(append(base, "-log-format", "json"))
	if err != nil || o.logFormat != logJSON {
		t.Fatalf("-log-format json: %v (%v)", o.logFormat, err)
	}
	want := `invalid value "xml" for flag -log-format: log format "xml": want text or json`
	if _, err := parseFlags(append(base, "-log-format", "xml")); err == nil || err.Error() != want {
		t.Errorf("-log-format xml: %v, want %s", err, want)
	}

	var buf bytes.Buffer
	newLogger(&buf, logJSON, slog.LevelInfo).Info("serving", "iface", "eth0")
	var rec map[string]any
	if err := json.Unmarshal(buf.Bytes(), &rec); err != nil || rec["msg"] != "serving" || rec["iface"] != "eth0" || rec["level"] != "INFO" {
		t.Errorf("JSON log line %q: %v, %v", buf.String(), rec, err)
	}
	buf.Reset()
	newLogger(&buf, logText, slog.LevelWarn).Info("hidden")
	newLogger(&buf, logText, slog.LevelInfo).Info("serving", "iface", "eth0")
	if got := buf.String(); !strings.Contains(got, "level=INFO msg=serving iface=eth0") || strings.Contains(got, "hidden") {
		t.Errorf("text log: %q", got)
	}
	for _, f := range []logFormat{logText, logJSON} {
		var got logFormat
		if b, err := f.MarshalText(); err != nil || got.UnmarshalText(b) != nil || got != f {
			t.Errorf("%v does not survive MarshalText and UnmarshalText", f)
		}
	}
}
