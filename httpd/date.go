package httpd

import (
	"sync/atomic"
	"time"
)

// dateCache keeps a formatted time for the current second, so that
// formatting happens once a second instead of once a request. The zero
// value formats the Date header's IMF-fixdate in UTC.
type dateCache struct {
	layout string // "" for timeFormat
	local  bool   // local time rather than UTC
	p      atomic.Pointer[dateEntry]
}

type dateEntry struct {
	sec int64
	b   []byte
}

func (d *dateCache) get(now time.Time) []byte {
	sec := now.Unix()
	if e := d.p.Load(); e != nil && e.sec == sec {
		return e.b
	}
	layout, t := d.layout, now.UTC()
	if layout == "" {
		layout = timeFormat
	}
	if d.local {
		t = now.Local()
	}
	e := &dateEntry{sec: sec, b: t.AppendFormat(make([]byte, 0, len(layout)+8), layout)}
	d.p.Store(e)
	return e.b
}

// timeFormat is RFC 9110's IMF-fixdate, as net/http's TimeFormat.
const timeFormat = "Mon, 02 Jan 2006 15:04:05 GMT"
