package httpd

import (
	"bytes"
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// follow is how long a test waits for the cache to follow a change: the
// issue's second, plus margin. A regression fails the wait instead of
// hanging.
const follow = 2 * time.Second

// shortSettle shortens settleTime, the stability check, for one test.
func shortSettle(t *testing.T) {
	old := settleTime
	settleTime = 300 * time.Millisecond
	t.Cleanup(func() { settleTime = old })
}

// waitServed waits for GET path to answer code and, for a 200, body.
func waitServed(t *testing.T, addr, path string, code int, body []byte) {
	t.Helper()
	var gotCode int
	var got []byte
	deadline := time.Now().Add(follow)
	for {
		if gotCode, got = get(t, addr, path); gotCode == code && (code != 200 || bytes.Equal(got, body)) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("GET %s after %v: %d, %d bytes %.40q; want %d, %d bytes", path, follow, gotCode, len(got), got, code, len(body))
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// waitCached waits for the cache to hold body under name, or, with body
// nil, to hold nothing under it.
func waitCached(t *testing.T, s *Server, name string, body []byte) {
	t.Helper()
	waitFor(t, follow, "the cache to follow "+name, func() bool {
		e := s.cache.Load().files[name]
		if body == nil {
			return e == nil
		}
		return e != nil && bytes.Equal(e.body, body)
	})
}

// write writes a file now, its modification time fresh.
func write(t *testing.T, p string, data string) {
	t.Helper()
	if err := os.WriteFile(p, []byte(data), 0o644); err != nil {
		t.Fatal(err)
	}
}

// An edited file is served, and cached, fresh within a second: the close
// of its writer ends the wait on its modification time.
func TestWatchEdit(t *testing.T) {
	fx := newFixture(t)
	s, addr := startServer(t, Config{Root: fx.root, CacheMax: 64 << 10})
	if s.watch == nil {
		t.Fatal("not watching")
	}
	write(t, filepath.Join(fx.root, "docs/style.css"), "edited")
	waitServed(t, addr, "/docs/style.css", 200, []byte("edited"))
	waitCached(t, s, "docs/style.css", []byte("edited"))

	f, err := os.OpenFile(filepath.Join(fx.root, "index.html"), os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.WriteString("appended\n")
	f.Close()
	waitCached(t, s, "index.html", []byte(rootIndex+"appended\n"))
	hits := s.Stats().CacheHits
	waitServed(t, addr, "/index.html", 200, []byte(rootIndex+"appended\n"))
	if s.Stats().CacheHits != hits+1 {
		t.Error("the edited file was not served from the cache")
	}
	// Edited files keep their place in the accounting; big.bin is over
	// CacheMax.
	if st := s.Stats(); st.CacheFiles != 4 || st.CacheSkipped != 1 {
		t.Errorf("after edits: %+v", st)
	}
}

func TestWatchAdd(t *testing.T) {
	fx := newFixture(t)
	s, addr := startServer(t, Config{Root: fx.root, CacheMax: 64 << 10})
	write(t, filepath.Join(fx.root, "new.txt"), "new file")
	waitServed(t, addr, "/new.txt", 200, []byte("new file"))
	waitCached(t, s, "new.txt", []byte("new file"))
	if st := s.Stats(); st.CacheFiles != 5 || st.CacheSkipped != 1 {
		t.Errorf("after an add: %+v", st)
	}
}

func TestWatchRemove(t *testing.T) {
	fx := newFixture(t)
	s, addr := startServer(t, Config{Root: fx.root, CacheMax: 64 << 10})
	before := s.Stats().CacheBytes
	if err := os.Remove(filepath.Join(fx.root, "small.bin")); err != nil {
		t.Fatal(err)
	}
	waitServed(t, addr, "/small.bin", 404, nil)
	waitCached(t, s, "small.bin", nil)
	if st := s.Stats(); st.CacheFiles != 3 || st.CacheBytes >= before {
		t.Errorf("after a removal: %+v (%d bytes before)", st, before)
	}
	// Too big to cache, removed: the disk says 404 as before.
	if err := os.Remove(filepath.Join(fx.root, "big.bin")); err != nil {
		t.Fatal(err)
	}
	waitServed(t, addr, "/big.bin", 404, nil)
	waitFor(t, follow, "big.bin to leave the skipped count", func() bool { return s.Stats().CacheSkipped == 0 })
}

// Editors and rsync write a temporary file and rename it over the old one.
func TestWatchRenameOver(t *testing.T) {
	fx := newFixture(t)
	s, addr := startServer(t, Config{Root: fx.root})
	for i, tmp := range []string{"docs/.style.css.swp", "docs/style.css~tmp", "elsewhere"} {
		p := filepath.Join(fx.root, tmp)
		if tmp == "elsewhere" {
			p = filepath.Join(t.TempDir(), tmp) // from outside Root, same file system
		}
		want := strings.Repeat("v", i+1)
		write(t, p, want)
		if err := os.Rename(p, filepath.Join(fx.root, "docs/style.css")); err != nil {
			t.Fatal(err)
		}
		waitServed(t, addr, "/docs/style.css", 200, []byte(want))
		waitCached(t, s, "docs/style.css", []byte(want))
		waitCached(t, s, tmp, nil)
	}
}

// A new directory is watched as soon as it is seen, and so is everything
// beneath it, whether made in place, moved in from outside, renamed or
// removed.
func TestWatchDirectories(t *testing.T) {
	shortSettle(t)
	fx := newFixture(t)
	s, addr := startServer(t, Config{Root: fx.root, CacheMax: 64 << 10})
	watched := s.watch.watched() // ".", docs, empty

	// Made in place, with files written before its watch can exist.
	deep := filepath.Join(fx.root, "sub/deep/er")
	if err := os.MkdirAll(deep, 0o755); err != nil {
		t.Fatal(err)
	}
	write(t, filepath.Join(fx.root, "sub/a.txt"), "a")
	write(t, filepath.Join(deep, "b.txt"), "b")
	waitServed(t, addr, "/sub/a.txt", 200, []byte("a"))
	waitServed(t, addr, "/sub/deep/er/b.txt", 200, []byte("b"))
	waitCached(t, s, "sub/deep/er/b.txt", []byte("b"))
	waitFor(t, follow, "the new directories to be watched", func() bool { return s.watch.watched() == watched+3 })
	write(t, filepath.Join(deep, "b.txt"), "b2")
	waitCached(t, s, "sub/deep/er/b.txt", []byte("b2"))
	if code, _ := get(t, addr, "/sub/deep"); code != 301 {
		t.Errorf("/sub/deep: %d", code)
	}

	// Renamed within Root: the old names go, the new ones are followed.
	if err := os.Rename(filepath.Join(fx.root, "sub"), filepath.Join(fx.root, "moved")); err != nil {
		t.Fatal(err)
	}
	waitServed(t, addr, "/sub/a.txt", 404, nil)
	waitServed(t, addr, "/moved/deep/er/b.txt", 200, []byte("b2"))
	waitCached(t, s, "moved/a.txt", []byte("a"))
	waitCached(t, s, "sub/a.txt", nil)
	write(t, filepath.Join(fx.root, "moved/deep/er/b.txt"), "b3")
	waitCached(t, s, "moved/deep/er/b.txt", []byte("b3"))

	// Moved in from outside, whole.
	outside := filepath.Join(t.TempDir(), "tree")
	writeOld(t, filepath.Join(outside, "in/c.txt"), []byte("c"))
	if err := os.Rename(outside, filepath.Join(fx.root, "tree")); err != nil {
		t.Fatal(err)
	}
	waitCached(t, s, "tree/in/c.txt", []byte("c"))
	waitFor(t, follow, "the moved-in tree to be watched", func() bool { return s.watch.watched() == watched+5 })

	// Removed: 404, and no watch is left behind.
	for _, d := range []string{"moved", "tree"} {
		if err := os.RemoveAll(filepath.Join(fx.root, d)); err != nil {
			t.Fatal(err)
		}
	}
	waitServed(t, addr, "/moved/a.txt", 404, nil)
	waitServed(t, addr, "/tree/in/c.txt", 404, nil)
	waitFor(t, follow, "the watches to go", func() bool { return s.watch.watched() == watched })
	waitFor(t, follow, "the cache to forget the trees", func() bool {
		snap := s.cache.Load()
		for n := range snap.files {
			if strings.HasPrefix(n, "moved/") || strings.HasPrefix(n, "tree/") {
				return false
			}
		}
		return !snap.dirs["moved"] && !snap.dirs["tree"] && !snap.dirs["moved/deep"]
	})
	if st := s.Stats(); st.CacheFiles != 4 {
		t.Errorf("after the trees went: %+v", st)
	}
}

// A file written in two parts, with a pause longer than the stability
// check between them, is never served or cached half: while its writer
// holds it open the cache keeps the previous version, a Reload included;
// once closed, the new version is served within a second. So does a link
// to it when another file's change makes the watcher look at links. A new
// file
// written that way is never cached half either (the disk serves what it
// has, as for any file the cache does not hold).
func TestWatchTornWrite(t *testing.T) {
	shortSettle(t)
	fx := newFixture(t)
	old := bytes.Repeat([]byte("A"), 30000)
	writeOld(t, filepath.Join(fx.root, "t.bin"), old)
	if err := os.Symlink("t.bin", filepath.Join(fx.root, "t.link")); err != nil {
		t.Fatal(err)
	}
	s, addr := startServer(t, Config{Root: fx.root})
	if snap := s.cache.Load(); snap.files["t.bin"] == nil || snap.files["t.link"] == nil {
		t.Fatal("t.bin or t.link not cached at start")
	}
	next := bytes.Repeat([]byte("B"), 40000)

	rewrite, err := os.OpenFile(filepath.Join(fx.root, "t.bin"), os.O_WRONLY|os.O_TRUNC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer rewrite.Close()
	created, err := os.OpenFile(filepath.Join(fx.root, "n.bin"), os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	defer created.Close()
	rewrite.Write(next[:len(next)/2])
	created.Write(next[:len(next)/2])
	// Another file changes meanwhile: the links are looked at again.
	write(t, filepath.Join(fx.root, "marker"), "m")

	pause := time.Now().Add(3 * settleTime)
	reloaded := false
	for time.Now().Before(pause) {
		for _, path := range []string{"/t.bin", "/t.link"} {
			if code, body := get(t, addr, path); code != 200 || !bytes.Equal(body, old) {
				t.Fatalf("GET %s mid-write: %d, %d bytes; want the previous version", path, code, len(body))
			}
		}
		if e := s.cache.Load().files["n.bin"]; e != nil {
			t.Fatalf("n.bin cached mid-write: %d bytes", len(e.body))
		}
		if !reloaded && time.Now().After(pause.Add(-settleTime)) {
			reloaded = true
			if err := s.Reload(); err != nil { // the half is older than settleTime by now
				t.Fatal(err)
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	rewrite.Write(next[len(next)/2:])
	created.Write(next[len(next)/2:])
	rewrite.Close()
	created.Close()
	waitServed(t, addr, "/t.bin", 200, next)
	waitServed(t, addr, "/t.link", 200, next)
	waitCached(t, s, "t.bin", next)
	waitCached(t, s, "n.bin", next)
	if s.cache.Load().files["marker"] == nil {
		t.Error("marker not cached")
	}
}

// A writer that keeps a cached file open past writeHold (a log, say) loses
// the previous version: the file is served from disk, and cached once it
// has been left alone for settleTime.
func TestWatchWriteHold(t *testing.T) {
	shortSettle(t)
	oldHold := writeHold
	writeHold = 500 * time.Millisecond
	t.Cleanup(func() { writeHold = oldHold })
	fx := newFixture(t)
	s, addr := startServer(t, Config{Root: fx.root})
	f, err := os.OpenFile(filepath.Join(fx.root, "index.html"), os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	f.WriteString("line 1\n")
	waitServed(t, addr, "/index.html", 200, []byte(rootIndex+"line 1\n"))
	f.WriteString("line 2\n")
	waitCached(t, s, "index.html", []byte(rootIndex+"line 1\nline 2\n"))
}

// A link is cached under its own name; when its target changes, so does
// what the link serves.
func TestWatchSymlink(t *testing.T) {
	fx := newFixture(t)
	if err := os.Symlink("docs/style.css", filepath.Join(fx.root, "link.css")); err != nil {
		t.Fatal(err)
	}
	s, addr := startServer(t, Config{Root: fx.root})
	if e := s.cache.Load().files["link.css"]; e == nil {
		t.Fatal("link not cached")
	}
	write(t, filepath.Join(fx.root, "docs/style.css"), "through the link")
	waitServed(t, addr, "/link.css", 200, []byte("through the link"))
	waitCached(t, s, "link.css", []byte("through the link"))
	// A link that leads out of Root stays out.
	if err := os.Symlink("/etc/passwd", filepath.Join(fx.root, "out")); err != nil {
		t.Fatal(err)
	}
	write(t, filepath.Join(fx.root, "marker"), "m")
	waitCached(t, s, "marker", []byte("m"))
	if code, _ := get(t, addr, "/out"); code != 404 || s.cache.Load().files["out"] != nil {
		t.Errorf("/out: %d", code)
	}
}

// Dot names are neither watched nor cached (only served with
// ServeDotFiles); /.well-known/ is followed like any directory.
func TestWatchDotFiles(t *testing.T) {
	fx := newFixture(t)
	writeOld(t, filepath.Join(fx.root, ".git/HEAD"), []byte("ref"))
	s, addr := startServer(t, Config{Root: fx.root})
	if err := os.MkdirAll(filepath.Join(fx.root, ".well-known/acme"), 0o755); err != nil {
		t.Fatal(err)
	}
	write(t, filepath.Join(fx.root, ".well-known/acme/token"), "tok")
	write(t, filepath.Join(fx.root, ".env"), "secret")
	write(t, filepath.Join(fx.root, ".git/config"), "secret")
	waitCached(t, s, ".well-known/acme/token", []byte("tok"))
	waitServed(t, addr, "/.well-known/acme/token", 200, []byte("tok"))
	snap := s.cache.Load()
	if snap.files[".env"] != nil || snap.files[".git/config"] != nil || snap.dirs[".git"] {
		t.Error("a dot name was cached")
	}
	s.watch.mu.Lock()
	_, git := s.watch.byName[".git"]
	s.watch.mu.Unlock()
	if git {
		t.Error(".git is watched")
	}
	if code, _ := get(t, addr, "/.env"); code != 404 {
		t.Errorf("/.env: %d", code)
	}
}

// count is how many times s is in what buf holds.
func (buf *syncBuffer) count(s string) int { return strings.Count(buf.String(), s) }

// At the watch limit the directories that could not be watched fall back
// to what the cache did before watching: it serves what it read until a
// Reload, which also watches them if it now can. The limit is logged once.
func TestWatchLimit(t *testing.T) {
	fx := newFixture(t)
	var limit sync.Mutex
	full := true
	add := inotifyAddWatch
	inotifyAddWatch = func(fd int, path string, mask uint32) (int, error) {
		limit.Lock()
		defer limit.Unlock()
		if full && path != fx.root {
			return -1, unix.ENOSPC
		}
		return add(fd, path, mask)
	}
	t.Cleanup(func() { inotifyAddWatch = add })
	var logged syncBuffer
	s, addr := startServer(t, Config{Root: fx.root, Logger: slog.New(slog.NewTextHandler(&logged, nil))})
	if n := s.watch.watched(); n != 1 {
		t.Fatalf("%d directories watched, want root alone", n)
	}

	write(t, filepath.Join(fx.root, "index.html"), "root followed")
	waitCached(t, s, "index.html", []byte("root followed"))
	writeOld(t, filepath.Join(fx.root, "docs/style.css"), []byte("docs not followed"))
	time.Sleep(5 * watchQuiet)
	if _, body := get(t, addr, "/docs/style.css"); string(body) != styleCSS {
		t.Errorf("unwatched docs/style.css: %q before a Reload", body)
	}
	if err := s.Reload(); err != nil {
		t.Fatal(err)
	}
	waitServed(t, addr, "/docs/style.css", 200, []byte("docs not followed"))
	if n := logged.count("inotify watch limit reached"); n != 1 {
		t.Errorf("the limit logged %d times, want once:\n%s", n, logged.b.String())
	}

	// Room again: a Reload watches what it walks.
	limit.Lock()
	full = false
	limit.Unlock()
	if err := s.Reload(); err != nil {
		t.Fatal(err)
	}
	if n := s.watch.watched(); n != 3 {
		t.Fatalf("%d directories watched after the Reload, want 3", n)
	}
	write(t, filepath.Join(fx.root, "docs/style.css"), "docs followed")
	waitCached(t, s, "docs/style.css", []byte("docs followed"))
}

// Without inotify, or on a root it cannot watch, the server serves as
// before watching and says so once.
func TestWatchUnavailable(t *testing.T) {
	t.Run("no inotify", func(t *testing.T) {
		init := inotifyInit
		inotifyInit = func() (int, error) { return -1, unix.ENOSYS }
		t.Cleanup(func() { inotifyInit = init })
		fx := newFixture(t)
		var logged syncBuffer
		s, addr := startServer(t, Config{Root: fx.root, Logger: slog.New(slog.NewTextHandler(&logged, nil))})
		if s.watch != nil {
			t.Fatal("watching without inotify")
		}
		writeOld(t, filepath.Join(fx.root, "docs/style.css"), []byte("changed"))
		if err := s.Reload(); err != nil {
			t.Fatal(err)
		}
		waitServed(t, addr, "/docs/style.css", 200, []byte("changed"))
		if n := logged.count("not following changes under root"); n != 1 {
			t.Errorf("logged %d times, want once:\n%s", n, logged.b.String())
		}
	})
	t.Run("root not watchable", func(t *testing.T) {
		add := inotifyAddWatch
		inotifyAddWatch = func(int, string, uint32) (int, error) { return -1, unix.EOPNOTSUPP }
		t.Cleanup(func() { inotifyAddWatch = add })
		fx := newFixture(t)
		var logged syncBuffer
		s, addr := startServer(t, Config{Root: fx.root, Logger: slog.New(slog.NewTextHandler(&logged, nil))})
		writeOld(t, filepath.Join(fx.root, "docs/style.css"), []byte("changed"))
		if err := s.Reload(); err != nil {
			t.Fatal(err)
		}
		waitServed(t, addr, "/docs/style.css", 200, []byte("changed"))
		if n := logged.count("cannot watch root"); n != 1 {
			t.Errorf("logged %d times, want once:\n%s", n, logged.b.String())
		}
	})
	t.Run("network file system", func(t *testing.T) {
		typ := fsType
		fsType = func(string) (int64, error) { return unix.NFS_SUPER_MAGIC, nil }
		t.Cleanup(func() { fsType = typ })
		fx := newFixture(t)
		var logged syncBuffer
		s, _ := startServer(t, Config{Root: fx.root, Logger: slog.New(slog.NewTextHandler(&logged, nil))})
		if s.watch == nil || logged.count("network file system") != 1 {
			t.Errorf("watching %v, logged:\n%s", s.watch != nil, logged.b.String())
		}
	})
}

// Shutdown stops the watcher's goroutine and closes its descriptor.
func TestWatchShutdown(t *testing.T) {
	fx := newFixture(t)
	runtime.GC()
	goroutines, fds := runtime.NumGoroutine(), openFDs(t)
	s, err := New(Config{Root: fx.root, Logger: quietLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	if s.watch == nil {
		t.Fatal("not watching")
	}
	write(t, filepath.Join(fx.root, "index.html"), "pending at shutdown")
	if err := s.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	select {
	case <-s.watch.done:
	default:
		t.Fatal("the watcher's goroutine still runs after Shutdown")
	}
	waitFor(t, follow, "goroutines to return", func() bool { return runtime.NumGoroutine() <= goroutines })
	waitFor(t, follow, "descriptors to close", func() bool { return openFDs(t) <= fds })
}

// When the kernel's event queue overflows, events are lost: the whole cache
// is loaded again once the burst is over, and that is logged once. The
// watcher is driven by hand here, without its goroutine.
func TestWatchOverflow(t *testing.T) {
	fx := newFixture(t)
	var logged syncBuffer
	s, addr := startServer(t, Config{Root: fx.root, NoWatch: true, Logger: slog.New(slog.NewTextHandler(&logged, nil))})
	w, err := newWatcher(s)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(w.close)
	s.watch = w
	if err := s.Reload(); err != nil { // watches what it walks
		t.Fatal(err)
	}
	loads := s.Stats().CacheReloads
	writeOld(t, filepath.Join(fx.root, "docs/style.css"), []byte("lost"))
	for range 2 {
		w.event(-1, unix.IN_Q_OVERFLOW, 0, "", time.Now())
	}
	w.process() // too soon: the burst may go on
	if s.Stats().CacheReloads != loads {
		t.Fatal("reloaded during the burst")
	}
	time.Sleep(watchQuiet + 10*time.Millisecond)
	w.process()
	if st := s.Stats(); st.CacheReloads != loads+1 {
		t.Fatalf("%d loads after the overflow, want %d", st.CacheReloads, loads+1)
	}
	waitServed(t, addr, "/docs/style.css", 200, []byte("lost"))
	if n := logged.count("events were lost"); n != 1 {
		t.Errorf("the overflow logged %d times, want once:\n%s", n, logged.b.String())
	}
}
