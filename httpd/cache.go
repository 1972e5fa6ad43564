package httpd

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"maps"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// entry is one file's response, ready to send: its body (nil for a file
// served from disk) and the header lines that do not change between
// requests, formatted once. A cached entry is immutable once published:
// its body above all, which the netstack's connections read in place
// until the segments carrying it are acknowledged (connWriter, lender),
// also after a reload has dropped the entry.
type entry struct {
	body   []byte // whole file; nil when served from disk; never written once read
	stamp  stamp  // the file as it was read, to tell whether a reload may keep it
	size   int64
	modSec int64  // Last-Modified, Unix seconds
	etag   []byte // quoted, strong: see appendETag

	// head is the fixed part of a 200 response head, in this order:
	// Content-Type, Last-Modified, ETag, Accept-Ranges, Content-Length.
	// The slices below are windows on it.
	head       []byte
	noLength   []byte // head without Content-Length, for 206
	validators []byte // Last-Modified and ETag, for 304
}

// fill formats e's fixed head for a file called name, reusing e's buffer:
// for the conn's disk entry this is what keeps the disk path allocation-free.
func (e *entry) fill(name string, size int64, mod time.Time) {
	e.size = size
	e.modSec = mod.Unix()
	h := e.head[:0]
	h = append(h, "Content-Type: "...)
	h = append(h, contentType(name)...)
	h = append(h, "\r\n"...)
	lm := len(h)
	h = append(h, "Last-Modified: "...)
	h = mod.UTC().AppendFormat(h, timeFormat)
	h = append(h, "\r\nETag: "...)
	et := len(h)
	h = appendETag(h, size, mod)
	ete := len(h)
	h = append(h, "\r\n"...)
	ar := len(h)
	h = append(h, "Accept-Ranges: bytes\r\n"...)
	cl := len(h)
	h = append(h, "Content-Length: "...)
	h = strconv.AppendInt(h, size, 10)
	h = append(h, "\r\n"...)
	e.head = h
	e.noLength = h[:cl]
	e.validators = h[lm:ar]
	e.etag = h[et:ete]
}

// appendETag appends the entity tag of a file version: its modification
// time in nanoseconds and its size, in hex, as nginx does with seconds. It
// is the same whether the file is served from memory or from disk, so a
// client's cached copy stays valid across a reload that changes only where
// the file comes from. The tag is strong: a file rewritten within the same
// nanosecond to the same size is the one case it misses.
func appendETag(dst []byte, size int64, mod time.Time) []byte {
	dst = append(dst, '"')
	dst = strconv.AppendInt(dst, mod.UnixNano(), 16)
	dst = append(dst, '-')
	dst = strconv.AppendInt(dst, size, 16)
	return append(dst, '"')
}

// stamp identifies one version of a file: the same inode with the same
// size and modification and change times has the same contents, since any
// write moves the change time.
type stamp struct {
	dev, ino    uint64
	size        int64
	mtime, ctim syscall.Timespec
}

func stampOf(fi fs.FileInfo) stamp {
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return stamp{} // never equal to a real one: see unchanged
	}
	return stamp{dev: st.Dev, ino: st.Ino, size: st.Size, mtime: st.Mtim, ctim: st.Ctim}
}

// unchanged reports whether a and b are the same version of a file.
func (a stamp) unchanged(b stamp) bool { return a.ino != 0 && a == b }

// snapshot is the cache as one load found it: immutable once published.
// Reload replaces it whole; the watcher (watch.go) publishes a copy with
// the names that changed replaced. Either way a request sees either the old
// version of a file or the new one.
type snapshot struct {
	files   map[string]*entry // by name relative to Root, as parseTarget makes them
	dirs    map[string]bool   // directories seen, "." included: "docs" is redirected without a stat
	left    map[string]bool   // regular files left to the disk: too big, over the total, changing, being written
	links   map[string]bool   // files cached through a symbolic link: their target changes under another name
	bytes   int64             // bodies and heads held
	skipped int               // len(left), for Stats
	fresh   int               // files left out as modified less than settleTime before the load
	loaded  time.Time
	took    time.Duration
}

func newSnapshot() *snapshot {
	return &snapshot{files: map[string]*entry{}, dirs: map[string]bool{}, left: map[string]bool{}, links: map[string]bool{}}
}

// cost is the memory an entry holds, as counted against CacheTotal.
func (e *entry) cost() int64 { return int64(len(e.body) + cap(e.head)) }

// clone copies snap's maps, for an update that must not touch what
// requests are reading.
func (snap *snapshot) clone() *snapshot {
	c := *snap
	c.files, c.dirs, c.left, c.links = maps.Clone(snap.files), maps.Clone(snap.dirs), maps.Clone(snap.left), maps.Clone(snap.links)
	return &c
}

// remove forgets name and, if it was a directory, everything beneath it.
func (snap *snapshot) remove(name string) {
	if e := snap.files[name]; e != nil {
		snap.bytes -= e.cost()
		delete(snap.files, name)
	}
	delete(snap.left, name)
	delete(snap.links, name)
	if !snap.dirs[name] {
		return
	}
	delete(snap.dirs, name)
	prefix := name + "/"
	for d := range snap.dirs {
		if strings.HasPrefix(d, prefix) {
			delete(snap.dirs, d)
		}
	}
	for n, e := range snap.files {
		if strings.HasPrefix(n, prefix) {
			snap.bytes -= e.cost()
			delete(snap.files, n)
		}
	}
	maps.DeleteFunc(snap.left, func(n string, _ bool) bool { return strings.HasPrefix(n, prefix) })
	maps.DeleteFunc(snap.links, func(n string, _ bool) bool { return strings.HasPrefix(n, prefix) })
}

// merge adds what part found (one file, or a directory's tree) to snap,
// within total bytes.
func (snap *snapshot) merge(part *snapshot, total int64) {
	maps.Copy(snap.dirs, part.dirs)
	maps.Copy(snap.left, part.left)
	for n, e := range part.files {
		if snap.bytes+e.cost() > total {
			snap.left[n] = true
			continue
		}
		snap.bytes += e.cost()
		snap.files[n] = e
		if part.links[n] {
			snap.links[n] = true
		}
	}
	snap.skipped = len(snap.left)
}

// lookup finds what the cache knows of t. It returns the entry to serve,
// or redirect for a directory named without its slash, or neither: then
// the disk decides (a file created since the load, one too big to cache,
// a 404). key is scratch space for building a directory's index name.
func (snap *snapshot) lookup(t target, key *[]byte) (e *entry, redirect bool) {
	if !t.dirSlash {
		if e := snap.files[string(t.name)]; e != nil {
			return e, false
		}
		return nil, snap.dirs[string(t.name)]
	}
	if !snap.dirs[string(t.name)] {
		return nil, false
	}
	k := (*key)[:0]
	if string(t.name) != "." {
		k = append(append(k, t.name...), '/')
	}
	k = append(k, "index.html"...)
	*key = k
	return snap.files[string(k)], false
}

// settleTime is how long a file must have been left alone before it is
// cached: one modified more recently may still be being written (a cp in
// progress, an editor saving in place), and a read cannot tell a pause in
// a writer from the end of a file. Such a file is served from disk, and a
// second load follows after settleTime to pick it up. The watcher waives
// the wait for a file whose writer it saw close it. A variable so that
// tests can shorten it.
var settleTime = time.Second

// file returns the entry for name, if snap (which may be nil) has one.
func (snap *snapshot) file(name string) *entry {
	if snap == nil {
		return nil
	}
	return snap.files[name]
}

// loadRetries is how often a file that changed while it was read is read
// again before it is left to the disk.
const loadRetries = 3

// errUnstable says a file changed while it was being read.
var errUnstable = errors.New("file changed while read")

// loader reads files beneath root into a snapshot: every regular file of at
// most max bytes, up to total bytes in all (bodies and heads). A file that
// prev holds and that has not changed since (see stamp) is taken over
// without reading it again, so a reload of a large site costs a stat per
// file and reads only what changed. It reads through os.Root, so it cannot
// leave root: a symbolic link is cached under its own name when it leads to
// a regular file inside root, and ignored when it leads out. Directories
// reached through links are not walked; their files are served from disk.
type loader struct {
	root       *os.Root
	max, total int64
	dotFiles   bool
	prev       *snapshot
	now        time.Time

	// closed: the watcher saw the file's last writer close it, so it is
	// whole and need not have aged settleTime first.
	closed bool
	// held reports a file that a writer has open (the watcher knows), by
	// its name or, for a link, its target's: its previous version is kept,
	// and a new file is left to the disk.
	held func(name string, link bool) bool
	// onDir is called for each directory before its entries are read: the
	// watcher adds its watch there, so no change is missed in between.
	onDir func(name string)

	fresh []string // files left out as modified within settleTime
}

// loadSnapshot reads every file beneath root into a new snapshot.
func (l *loader) loadSnapshot() (*snapshot, error) {
	start := time.Now()
	l.now = start
	snap := newSnapshot()
	snap.loaded = start
	if err := l.walk(snap, "."); err != nil {
		return nil, err
	}
	snap.fresh = len(l.fresh)
	snap.skipped = len(snap.left)
	snap.took = time.Since(start)
	return snap, nil
}

// walk adds the tree at dir to snap. Only an error on dir itself is
// returned: an unreadable entry beneath it is left to the disk path.
func (l *loader) walk(snap *snapshot, dir string) error {
	return fs.WalkDir(l.root.FS(), dir, func(name string, d fs.DirEntry, err error) error {
		if err != nil {
			if name == dir {
				return err
			}
			return nil
		}
		if !l.dotFiles && hidden(name) {
			// Never served: not worth memory (a .git/ can be large).
			if d.IsDir() {
				return fs.SkipDir
			}
			return nil
		}
		if d.IsDir() {
			if l.onDir != nil {
				l.onDir(name)
			}
			snap.dirs[name] = true
			return nil
		}
		l.file(snap, name, d.Type())
		return nil
	})
}

// file adds the file name, of type typ (as Lstat gives it), to snap, or
// notes it left to the disk.
func (l *loader) file(snap *snapshot, name string, typ fs.FileMode) {
	if !typ.IsRegular() && typ&fs.ModeSymlink == 0 {
		return
	}
	var e *entry
	var err error
	old := l.prev.file(name)
	switch {
	case l.held != nil && l.held(name, typ&fs.ModeSymlink != 0):
		if old == nil {
			snap.left[name] = true
			return
		}
		e = old
	case old != nil:
		if fi, err := l.root.Stat(name); err == nil && stampOf(fi).unchanged(old.stamp) {
			e = old
		}
	}
	if e == nil {
		e, err = loadFile(l.root, name, l.max, l.now, l.closed)
	}
	switch {
	case err == errFresh:
		snap.left[name] = true
		l.fresh = append(l.fresh, name)
		return
	case err != nil:
		snap.left[name] = true
		return
	case e == nil:
		return // empty, or not a regular file after all (a link to a directory, a FIFO)
	}
	if snap.bytes+e.cost() > l.total {
		snap.left[name] = true
		return
	}
	snap.bytes += e.cost()
	snap.files[name] = e
	if typ&fs.ModeSymlink != 0 {
		snap.links[name] = true
	}
}

// errTooBig leaves a file to the disk path.
var errTooBig = errors.New("file larger than the cache's limit")

// loadFile reads name whole, unless it was modified within settleTime of
// now (and not closed: see loader), and checks that it did not change
// meanwhile: the size and the modification and change times are the same
// before and after the read, and the read ended exactly at the size. A file that keeps changing is
// skipped (served from disk) rather than cached half-written. A writer that
// pauses for longer than settleTime in the middle of a file still leaves a
// consistent half behind, which no reader can tell from a whole file:
// writers that want a new version picked up whole by every reader write a
// temporary file and rename it into place (as rsync does). The watcher
// closes that gap for writers that keep the file open through the pause.
func loadFile(root *os.Root, name string, max int64, now time.Time, closed bool) (*entry, error) {
	for range loadRetries {
		e, err := readFile(root, name, max, now, closed)
		if err != errUnstable {
			return e, err
		}
	}
	return nil, fmt.Errorf("%s: %w", name, errUnstable)
}

// errFresh leaves a file that changed within settleTime to the disk.
var errFresh = errors.New("file modified too recently to be cached")

// testHookRead, when set by a test, runs between reading a file and
// checking that it did not change.
var testHookRead func(name string)

func readFile(root *os.Root, name string, max int64, now time.Time, closed bool) (*entry, error) {
	f, err := root.OpenFile(name, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	before, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if !before.Mode().IsRegular() {
		return nil, nil
	}
	size := before.Size()
	if size > max {
		return nil, errTooBig
	}
	if size == 0 {
		// Left to the disk, which has nothing to read anyway: a file being
		// rewritten (open with O_TRUNC) is empty for a moment with its old
		// times, since the kernel sets the size before the times, and no
		// check can tell that moment from a file that is empty for good.
		return nil, nil
	}
	if d := now.Sub(before.ModTime()); !closed && d < settleTime && d > -settleTime {
		return nil, errFresh
	}
	body := make([]byte, size, size+1)
	if _, err := io.ReadFull(f, body); err != nil {
		if err == io.ErrUnexpectedEOF || err == io.EOF {
			return nil, errUnstable // shrank
		}
		return nil, err
	}
	if n, _ := f.Read(body[size : size+1]); n > 0 {
		return nil, errUnstable // grew
	}
	if testHookRead != nil {
		testHookRead(name)
	}
	after, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if after.Size() != size || !after.ModTime().Equal(before.ModTime()) || ctime(after) != ctime(before) {
		return nil, errUnstable
	}
	e := &entry{body: body[:size:size], stamp: stampOf(before)}
	// Format twice: the first pass sizes the head, the second fills a
	// buffer of that size, so a cached head carries no spare capacity.
	e.fill(name, size, before.ModTime())
	e.head = make([]byte, 0, len(e.head))
	e.fill(name, size, before.ModTime())
	return e, nil
}

// ctime is the inode change time, which moves on any write or metadata
// change, even one that sets the modification time back.
func ctime(fi fs.FileInfo) syscall.Timespec {
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		return st.Ctim
	}
	return syscall.Timespec{}
}

// Reload reads the files beneath Root into a new cache and swaps it in
// atomically: requests already running finish with the old contents, later
// ones see the new. Files changed, added or removed since the last load are
// picked up. The cache also follows Root by itself (see watch.go) unless
// Config.NoWatch; Reload is the full reload that catches what watching
// cannot see (a directory left unwatched at the inotify limit, a change
// made on another host of a network file system), and it watches again
// every directory it walks. A file modified within the last second is left
// to the disk, and a second load follows a second later to cache it; one
// that the watcher knows a writer has open keeps its previous version. On
// error the old cache stays. Reloads are serialized. With the cache
// disabled Reload does nothing.
func (s *Server) Reload() error { return s.reload(true, slog.LevelInfo) }

// reload loads the cache, logging the outcome at level: the first load and
// the follow-up are quiet, since a misconfiguration found after New must
// still be one line on stderr.
func (s *Server) reload(followUp bool, level slog.Level) error {
	if s.cfg.CacheMax < 0 {
		return nil
	}
	s.reloadMu.Lock()
	defer s.reloadMu.Unlock()
	if s.inShutdown.Load() && s.cache.Load() != nil {
		return nil
	}
	l := s.loader(s.cache.Load())
	snap, err := l.loadSnapshot()
	if err != nil {
		s.stats.reloadErrors.Add(1)
		return fmt.Errorf("httpd: load cache from %q: %w", s.cfg.Root, err)
	}
	s.cache.Store(snap)
	s.stats.reloads.Add(1)
	s.log.Log(context.Background(), level, "cache loaded", "files", len(snap.files), "bytes", snap.bytes,
		"skipped", snap.skipped, "fresh", snap.fresh, "took", snap.took.Round(time.Millisecond))
	if followUp && snap.fresh > 0 {
		// Once only: a file that is modified all the time is never cached,
		// and must not keep the server reloading.
		if s.settleTimer != nil {
			s.settleTimer.Stop()
		}
		s.settleTimer = time.AfterFunc(settleTime+settleTime/10, func() {
			if err := s.reload(false, slog.LevelDebug); err != nil && !s.inShutdown.Load() {
				s.log.Warn("cache reload", "err", err)
			}
		})
	}
	return nil
}

// loader returns a loader over Root with the Config's limits, prev to take
// unchanged files from, and the watcher's hooks when it watches.
func (s *Server) loader(prev *snapshot) *loader {
	l := &loader{root: s.root, max: s.cfg.CacheMax, total: s.cfg.CacheTotal, dotFiles: s.cfg.ServeDotFiles, prev: prev, now: time.Now()}
	if w := s.watch; w != nil {
		l.held, l.onDir = w.held, w.add
	}
	return l
}
