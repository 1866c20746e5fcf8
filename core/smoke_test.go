package session

import "testing"

func TestSmokeCounter(t *testing.T) {
	e := newEnv(t, counterMux(), WithInitializer(map[string]any{"count": 0}))
	c := e.client()
	for i, want := range []string{"1", "2", "3"} {
		if got := c.body("/count"); got != want {
			t.Fatalf("request %d: got %q want %q", i, got, want)
		}
	}
	c.body("/reset")
	if got := c.body("/count"); got != "1" {
		t.Fatalf("after reset got %q", got)
	}
	t.Logf("calls: %v", e.store.calls)
}
