package relayurl

import "testing"

func TestMatch(t *testing.T) {
	base, err := Parse("http://Config.internal:8080/")
	if err != nil {
		t.Fatal(err)
	}
	const id = "ep_01JEZ6Y7C6Q8W3F0Z6W2Y7C6Q8"
	if got, want := base.EndpointURL(id), "http://config.internal:8080/relay/v1/"+id; got != want {
		t.Fatalf("EndpointURL = %q, want %q", got, want)
	}
	for _, tc := range []struct {
		url    string
		wantID string
	}{
		{"http://config.internal:8080/relay/v1/" + id, id},
		{"http://CONFIG.internal:8080/relay/v1/" + id, id},
		{"https://config.internal:8080/relay/v1/" + id, ""},             // other scheme
		{"http://config.internal/relay/v1/" + id, ""},                   // other port
		{"http://config.internal:8081/relay/v1/" + id, ""},              // other port
		{"http://evil.example:8080/relay/v1/" + id, ""},                 // other host, same path
		{"http://config.internal.evil.example:8080/relay/v1/" + id, ""}, // suffix trick
		{"http://config.internal:8080/relay/v1/" + id + "/x", ""},       // more segments
		{"http://config.internal:8080/relay/v1/../v1/endpoints", ""},    // dot segments
		{"http://config.internal:8080/relay/v1/%2e%2e", ""},             // escaped
		{"http://config.internal:8080/relay/v1/" + id + "?a=1", ""},     // query
		{"http://config.internal:8080/relay/v1/" + id + "#f", ""},       // fragment
		{"http://u:p@config.internal:8080/relay/v1/" + id, ""},          // user info
		{"http://config.internal:8080/v1/endpoints", ""},                // other route
		{"http://config.internal:8080/relay/v1/", ""},                   // no id
	} {
		gotID, ok := base.MatchString(tc.url)
		if gotID != tc.wantID || ok != (tc.wantID != "") {
			t.Errorf("MatchString(%q) = %q, %v; want %q", tc.url, gotID, ok, tc.wantID)
		}
	}
	if _, ok := (Base{}).MatchString("http://config.internal:8080/relay/v1/" + id); ok {
		t.Errorf("the zero Base matched a URL")
	}
}

func TestParse(t *testing.T) {
	for _, tc := range []struct {
		raw string
		ok  bool
	}{
		{"http://localhost:8080", true},
		{"https://hooks.example.com/pulse", true},
		{"ftp://x", false},
		{"http://", false},
		{"http://h?x=1", false},
		{"http://u@h", false},
	} {
		if _, err := Parse(tc.raw); (err == nil) != tc.ok {
			t.Errorf("Parse(%q) error = %v, want ok=%v", tc.raw, err, tc.ok)
		}
	}
	b, _ := Parse("https://hooks.example.com/pulse/")
	if got, want := b.EndpointURL("ep_1"), "https://hooks.example.com/pulse/relay/v1/ep_1"; got != want {
		t.Errorf("EndpointURL with a base path = %q, want %q", got, want)
	}
}
