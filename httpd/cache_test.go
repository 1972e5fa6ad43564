package httpd

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func get(t *testing.T, addr, path string) (int, []byte) {
	t.Helper()
	resp, body, _ := roundTrip(t, addr, "GET "+path+" HTTP/1.1\r\nHost: x\r\n\r\n")
	return resp.StatusCode, body
}

// Without watching, the cache serves what it loaded until Reload; what it
// does not hold comes from disk; Reload picks up changes, additions and
// removals.
func TestCacheAndReload(t *testing.T) {
	fx := newFixture(t)
	s, addr := startServer(t, Config{Root: fx.root, CacheMax: 64 << 10, NoWatch: true})
	st := s.Stats()
	// small.bin, index.html, docs/index.html, docs/style.css; big.bin is over CacheMax.
	if st.CacheFiles != 4 || st.CacheSkipped != 1 || st.CacheReloads != 1 {
		t.Fatalf("after New: %+v", st)
	}

	if code, body := get(t, addr, "/small.bin"); code != 200 || !bytes.Equal(body, fx.small) {
		t.Fatalf("small.bin: %d", code)
	}
	if code, body := get(t, addr, "/big.bin"); code != 200 || !bytes.Equal(body, fx.big) {
		t.Fatalf("big.bin: %d", code)
	}
	if st := s.Stats(); st.CacheHits != 1 || st.DiskServed != 1 {
		t.Errorf("hits %d, from disk %d; want 1 and 1", st.CacheHits, st.DiskServed)
	}

	// Changes on disk: the cache goes on serving what it read.
	if err := os.Remove(filepath.Join(fx.root, "small.bin")); err != nil {
		t.Fatal(err)
	}
	writeOld(t, filepath.Join(fx.root, "docs/style.css"), []byte("new style"))
	writeOld(t, filepath.Join(fx.root, "new.txt"), []byte("new file"))
	if code, body := get(t, addr, "/small.bin"); code != 200 || !bytes.Equal(body, fx.small) {
		t.Errorf("removed small.bin before reload: %d", code)
	}
	if code, body := get(t, addr, "/docs/style.css"); code != 200 || string(body) != styleCSS {
		t.Errorf("changed style.css before reload: %d %q", code, body)
	}
	if code, body := get(t, addr, "/new.txt"); code != 200 || string(body) != "new file" {
		t.Errorf("new.txt before reload (from disk): %d %q", code, body)
	}

	before := s.cache.Load()
	if err := s.Reload(); err != nil {
		t.Fatal(err)
	}
	// What did not change is taken over as it was, not read again.
	after := s.cache.Load()
	if after.files["index.html"] != before.files["index.html"] || after.files["docs/style.css"] == before.files["docs/style.css"] {
		t.Error("reload did not keep the unchanged file and read the changed one")
	}
	if code, _ := get(t, addr, "/small.bin"); code != 404 {
		t.Errorf("removed small.bin after reload: %d", code)
	}
	if code, body := get(t, addr, "/docs/style.css"); code != 200 || string(body) != "new style" {
		t.Errorf("changed style.css after reload: %d %q", code, body)
	}
	hits := s.Stats().CacheHits
	if code, body := get(t, addr, "/new.txt"); code != 200 || string(body) != "new file" {
		t.Errorf("new.txt after reload: %d %q", code, body)
	}
	if st := s.Stats(); st.CacheHits != hits+1 || st.CacheReloads != 2 || st.CacheFiles != 4 {
		t.Errorf("after reload: %+v", st)
	}
	// An empty file is left to the disk (see readFile) and served all the same.
	writeOld(t, filepath.Join(fx.root, "empty.txt"), nil)
	if err := s.Reload(); err != nil {
		t.Fatal(err)
	}
	disk := s.Stats().DiskServed
	if code, body := get(t, addr, "/empty.txt"); code != 200 || len(body) != 0 || s.Stats().DiskServed != disk+1 {
		t.Errorf("empty.txt: %d, %d bytes", code, len(body))
	}
	// Directories: redirect and index from the cache too.
	if code, body := get(t, addr, "/docs/"); code != 200 || string(body) != docsIndex {
		t.Errorf("/docs/: %d %q", code, body)
	}
	if code, _ := get(t, addr, "/docs"); code != 301 {
		t.Errorf("/docs: %d", code)
	}
	if code, _ := get(t, addr, "/small.bin/"); code != 404 {
		t.Errorf("/small.bin/: %d", code)
	}
}

func TestCacheTotal(t *testing.T) {
	fx := newFixture(t)
	s, _ := startServer(t, Config{Root: fx.root, CacheMax: 4 << 20, CacheTotal: 4 << 10})
	st := s.Stats()
	if st.CacheBytes > 4<<10 || st.CacheSkipped == 0 || st.CacheFiles == 0 {
		t.Errorf("CacheTotal 4 KiB: %d files, %d bytes, %d skipped", st.CacheFiles, st.CacheBytes, st.CacheSkipped)
	}
}

// A file modified within settleTime is served from disk, and the load that
// follows by itself caches it.
func TestCacheLeavesFreshFiles(t *testing.T) {
	old := settleTime
	settleTime = 300 * time.Millisecond
	t.Cleanup(func() { settleTime = old })
	fx := newFixture(t)
	if err := os.WriteFile(filepath.Join(fx.root, "fresh.txt"), []byte("fresh"), 0o644); err != nil {
		t.Fatal(err)
	}
	s, addr := startServer(t, Config{Root: fx.root})
	if st := s.Stats(); st.CacheSkipped != 1 {
		t.Fatalf("fresh file cached at once: %+v", st)
	}
	if code, body := get(t, addr, "/fresh.txt"); code != 200 || string(body) != "fresh" {
		t.Fatalf("fresh.txt: %d %q", code, body)
	}
	deadline := time.Now().Add(5 * time.Second)
	for s.Stats().CacheReloads < 2 {
		if time.Now().After(deadline) {
			t.Fatal("no follow-up load")
		}
		time.Sleep(20 * time.Millisecond)
	}
	if st := s.Stats(); st.CacheSkipped != 0 || st.CacheFiles != 6 {
		t.Errorf("after the follow-up load: %+v", st)
	}
	time.Sleep(2 * settleTime)
	if n := s.Stats().CacheReloads; n != 2 {
		t.Errorf("%d loads; the follow-up must not schedule another", n)
	}
}

// A file that changes between the read and the check is read again; one
// that keeps changing is left to the disk.
func TestCacheRereadsChangingFiles(t *testing.T) {
	fx := newFixture(t)
	p := filepath.Join(fx.root, "small.bin")
	var changes atomic.Int32
	testHookRead = func(name string) {
		if name == "small.bin" && changes.Add(-1) >= 0 {
			// Grow the file, and keep its mtime out of the settle window.
			f, err := os.OpenFile(p, os.O_APPEND|os.O_WRONLY, 0)
			if err != nil {
				t.Error(err)
				return
			}
			f.Write([]byte("x"))
			f.Close()
			old := time.Now().Add(-time.Hour)
			os.Chtimes(p, old, old)
		}
	}
	t.Cleanup(func() { testHookRead = nil })

	changes.Store(1) // once: the second read holds
	// Without watching: the watcher would read the file too, and run the hook.
	s, err := New(Config{Root: fx.root, Logger: quietLogger(t), NoWatch: true})
	if err != nil {
		t.Fatal(err)
	}
	e := s.cache.Load().files["small.bin"]
	if e == nil || len(e.body) != len(fx.small)+1 || !bytes.Equal(e.body[:len(fx.small)], fx.small) {
		t.Fatalf("after one change: %v", e != nil)
	}

	changes.Store(loadRetries) // every time: left out
	writeOld(t, p, fx.small)   // changed since the last load, so read again
	if err := s.Reload(); err != nil {
		t.Fatal(err)
	}
	if e := s.cache.Load().files["small.bin"]; e != nil {
		t.Error("a file that changed on every read was cached")
	}
	if st := s.Stats(); st.CacheSkipped != 1 {
		t.Errorf("skipped %d, want 1", st.CacheSkipped)
	}
	s.Shutdown(context.Background())
}

// Writers rewrite files in place (pausing between their writes, as cp
// does) and rename new versions into place, while the cache reloads in a
// loop: every body the cache holds is one whole version of its file, never
// a mix or a prefix. Each version of a file is its version byte repeated,
// at a length that differs by version. Now and then a writer rests longer
// than settleTime, so that versions do get cached.
func TestReloadNeverTorn(t *testing.T) {
	old := settleTime
	settleTime = 300 * time.Millisecond
	t.Cleanup(func() { settleTime = old })
	fx := newFixture(t)
	s, addr := startServer(t, Config{Root: fx.root})

	version := func(v byte) []byte { return bytes.Repeat([]byte{v}, 20000+int(v)*100) }
	whole := func(b []byte) bool {
		return len(b) > 0 && bytes.Equal(b, version(b[0]))
	}
	stop := make(chan struct{})
	rest := func(v byte) {
		d := time.Duration(v%3) * 10 * time.Millisecond
		if v%4 == 0 {
			d = settleTime + 200*time.Millisecond
		}
		select {
		case <-stop:
		case <-time.After(d):
		}
	}
	var wg sync.WaitGroup
	inPlace := func(name string, chunk int) {
		p := filepath.Join(fx.root, name)
		for v := byte(1); ; v++ {
			select {
			case <-stop:
				return
			default:
			}
			data := version(v)
			f, err := os.OpenFile(p, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
			if err != nil {
				t.Error(err)
				return
			}
			for off := 0; off < len(data); off += chunk {
				f.Write(data[off:min(off+chunk, len(data))])
				time.Sleep(time.Millisecond) // a writer that pauses, as cp between its reads
			}
			f.Close()
			rest(v)
		}
	}
	renamer := func(name string) {
		p := filepath.Join(fx.root, name)
		for v := byte(1); ; v++ {
			select {
			case <-stop:
				return
			default:
			}
			tmp := p + ".tmp"
			os.WriteFile(tmp, version(v), 0o644)
			os.Rename(tmp, p)
			rest(v)
		}
	}
	var once sync.Once
	stopWriters := func() { once.Do(func() { close(stop); wg.Wait() }) }
	defer stopWriters()
	wg.Go(func() { inPlace("a.bin", 4096) })
	wg.Go(func() { inPlace("b.bin", 1000) })
	wg.Go(func() { renamer("c.bin") })

	deadline := time.Now().Add(3 * time.Second)
	checked, cached := 0, 0
	for time.Now().Before(deadline) {
		if err := s.Reload(); err != nil {
			t.Fatal(err)
		}
		for _, name := range []string{"a.bin", "b.bin", "c.bin"} {
			checked++
			if e := s.cache.Load().files[name]; e != nil {
				cached++
				if !whole(e.body) {
					t.Fatalf("%s cached torn: %d bytes", name, len(e.body))
				}
			}
		}
		time.Sleep(10 * time.Millisecond)
	}
	stopWriters()
	t.Logf("%d looks at the cache, %d found a cached version", checked, cached)
	// Once the writers stop and the files settle, they are all cached.
	time.Sleep(2 * settleTime)
	if err := s.Reload(); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"a.bin", "b.bin", "c.bin"} {
		e := s.cache.Load().files[name]
		if e == nil || !whole(e.body) {
			t.Errorf("%s not cached whole after the writers stopped", name)
		}
		if code, body := get(t, addr, "/"+name); code != 200 || !whole(body) {
			t.Errorf("GET /%s: %d, %d bytes", name, code, len(body))
		}
	}
}
