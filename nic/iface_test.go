package nic

import (
	"flag"
	"io"
	"testing"
)

func TestRxChecksumText(t *testing.T) {
	for s, want := range map[string]RxChecksum{"auto": RxChecksumAuto, "verify": RxChecksumVerify, "trust": RxChecksumTrust} {
		var c RxChecksum
		if err := c.UnmarshalText([]byte(s)); err != nil || c != want {
			t.Errorf("%q: %v (%v), want %v", s, c, err, want)
		}
		if b, err := want.MarshalText(); err != nil || string(b) != s {
			t.Errorf("MarshalText(%v) = %q (%v), want %q", want, b, err, s)
		}
	}
	for _, s := range []string{"", "Auto", "maybe", "trust "} {
		c := RxChecksumTrust
		err := c.UnmarshalText([]byte(s))
		if want := `rx checksum "` + s + `": want auto, verify or trust`; err == nil || err.Error() != want {
			t.Errorf("%q: error %v, want %q", s, err, want)
		}
		if c != RxChecksumTrust {
			t.Errorf("%q: a bad value changed the policy to %v", s, c)
		}
	}
	if s := RxChecksum(7).String(); s != "RxChecksum(7)" {
		t.Errorf("String of an unknown policy: %q", s)
	}

	// As a flag: the default shows by name, and the zero value is auto.
	fs := flag.NewFlagSet("t", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	var c RxChecksum
	fs.TextVar(&c, "rx-checksum", RxChecksumAuto, "")
	if d := fs.Lookup("rx-checksum").DefValue; d != "auto" {
		t.Errorf("default %q, want auto", d)
	}
	if err := fs.Parse([]string{"-rx-checksum", "verify"}); err != nil || c != RxChecksumVerify {
		t.Errorf("-rx-checksum verify: %v (%v)", c, err)
	}
}
