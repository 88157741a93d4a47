//! Redaction of every secret family, in headers and bodies, whole and cut at the end of a
//! captured call; the output never holds the secret.

use proctor_intent::Redactor;

/// (secret, text that carries it, the rule expected to fire)
fn cases() -> Vec<(&'static str, String, &'static str)> {
    let c = |secret: &'static str, text: &str, rule: &'static str| {
        (secret, text.replace("{}", secret), rule)
    };
    vec![
        c("sk-abcdefghijklmnopqrstuvwxyz0123456789ABCD", "Authorization: Bearer {}\r\n", "authorization-header"),
        c("dXNlcjpodW50ZXIy", "proxy-authorization: Basic {}\r\n", "authorization-header"),
        c("sk-ant-api03-abcdefghijklmnopqrstuvwxyz-0123456789_AAAA", "x-api-key: {}\r\n", "secret-header"),
        c("0123456789abcdef0123456789abcdef", "api-key: {}\r\n", "secret-header"),
        c("AIzaSyD-0123456789abcdefghijklmnopqrstu", "X-Goog-Api-Key: {}\r\n", "secret-header"),
        c("opaque.session.value=xyz", "Cookie: {}\r\n", "cookie-header"),
        c("sid=31d4d96e407aad42; Path=/; Secure", "Set-Cookie: {}\r\n", "cookie-header"),
        c("ghs_opaqueopaqueopaque", "X-GitHub-Token: {}\r\n", "secret-header"),
        c("abcdefghijklmnopqrstuv123456", r#"curl -H "Authorization: bearer {}" https://x"#, "bearer"),
        c("sk-abcdefghijklmnopqrstuvwxyz0123456789ABCD", r#"{"key": "{}"}"#, "anthropic-openai-key"),
        c("sk-proj-Abc123_def456-GHI789jkl012MNO345pqr678", "OPENAI_API_KEY is {} now", "anthropic-openai-key"),
        c("sk-ant-api03-Zx9_Yw8-Vu7Ts6Rq5Po4Nm3Lk2Ji1Hg0", "export K={}", "anthropic-openai-key"),
        c("AKIAIOSFODNN7EXAMPLE", "id AKIAIOSFODNN7EXAMPLE here", "aws-access-key-id"),
        c("ASIAY34FZKBOKMUTVV7A", r#"{"AccessKeyId":"ASIAY34FZKBOKMUTVV7A"}"#, "aws-access-key-id"),
        c("wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY", "[default]\naws_secret_access_key = {}\n", "key-value"),
        c("ghp_abcdefghijklmnopqrstuvwxyz0123456789", "token {} leaked", "github-token"),
        c("github_pat_11ABCDEFG0abcdefghijkl_mnopqrstuvwxyz0123456789ABCDEFGHIJKLMNOPQRSTU", "x {} y", "github-token"),
        c("gho_abcdefghijklmnopqrstuvwxyz0123456789", "x {} y", "github-token"),
        c("xoxb-123456789012-1234567890123-AbCdEfGhIjKlMnOpQrStUvWx", "slack {} ok", "slack-token"),
        c("AIzaSyD-0123456789abcdefghijklmnopqrstu", "key={}&q=1", "google-api-key"),
        c("AIzaSyD-0123456789abcdefghijklmnopqrstu", "url /maps?k {} x", "google-api-key"),
        c(
            "MIIEvQIBADANBgkqhkiG9w0BAQEFAASCBKcwggSjAgEAAoIBAQC7\nVJTUt9Us8cKjMzEfYyjiWA4R4/M2bS1GB4t7NXp98C3SC6dV\n",
            "-----BEGIN PRIVATE KEY-----\n{}-----END PRIVATE KEY-----\n",
            "private-key",
        ),
        c(
            "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U",
            "token={}",
            "key-value",
        ),
        c(
            "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U",
            "jwt {} end",
            "jwt",
        ),
        c("correct horse battery staple", r#"{"user":"bob","password": "{}"}"#, "json-field"),
        c("hunter2hunter2", r#"{"api_key":"{}","n":1}"#, "json-field"),
        c("s3cr3t-value", r#"{"arguments":"{\"client_secret\": \"{}\"}"}"#, "json-field"),
        c("Basic dXNlcjpodW50ZXIy", r#"{"headers": {"Authorization": "{}"}}"#, "json-field"),
        c("sid=abcdef; theme=dark", r#"{"Cookie":"{}"}"#, "json-field"),
        c("pa55w0rd", "https://bob:{}@example.com/x", "url-password"),
        c("sk_live_abcdefghijklmnop", "stripe {} x", "stripe-key"),
        c("hf_abcdefghijklmnopqrstuvwxyzABCDEFGH", "hf {} x", "huggingface-token"),
        c("dbpass-123", "DB_PASSWORD=dbpass-123\n", "key-value"),
    ]
}

#[test]
fn every_family_is_redacted_and_named() {
    let r = Redactor::new();
    for (secret, text, rule) in cases() {
        let (out, rules) = r.redact_explained(text.as_bytes());
        let out = String::from_utf8(out).unwrap();
        assert!(!out.contains(secret), "{rule}: secret survived in {out:?}");
        assert!(out.contains("[REDACTED]"), "{rule}: {out:?}");
        assert_eq!(
            rules.first().copied(),
            Some(rule),
            "{text:?} -> {out:?} by {rules:?}"
        );
        let (_, n) = r.redact(text.as_bytes());
        assert_eq!(n as usize, rules.len());
    }
}

#[test]
fn names_and_prefixes_stay_readable() {
    let r = Redactor::new();
    let red = |s: &str| String::from_utf8(r.redact(s.as_bytes()).0).unwrap();
    assert_eq!(
        red("Authorization: Bearer sk-abcdefghijklmnopqrstuvwx\r\n"),
        "Authorization: Bearer [REDACTED]\r\n"
    );
    assert_eq!(
        red("x sk-ant-api03-abcdefghijklmnopqrstuvwx y"),
        "x sk-ant-api03-[REDACTED] y"
    );
    assert_eq!(
        red(r#"{"password": "a b c", "user": "u"}"#),
        r#"{"password": "[REDACTED]", "user": "u"}"#
    );
    assert_eq!(
        red("-----BEGIN RSA PRIVATE KEY-----\nabc\n-----END RSA PRIVATE KEY-----"),
        "-----BEGIN RSA PRIVATE KEY-----[REDACTED]-----END RSA PRIVATE KEY-----"
    );
}

#[test]
fn secrets_cut_at_the_end_of_a_call_are_redacted() {
    let r = Redactor::new();
    for (secret, text, rule) in cases() {
        let start = text.find(secret).unwrap();
        // Cut anywhere inside the secret, from its 4th byte on (shorter stubs are not secrets).
        for cut in start + 4..start + secret.len() {
            let data = &text.as_bytes()[..cut];
            let leaked = &secret[..cut - start];
            let (out, n) = r.redact(data);
            // A leaked stub must not appear; a stub of only the well-known prefix may.
            let out = String::from_utf8_lossy(&out);
            let prefix_only = [
                "sk-ant-api03-",
                "sk-proj-",
                "github_pat_",
                "sk_live_",
                "-----BEGIN",
            ]
            .iter()
            .any(|p| p.starts_with(leaked) || leaked.len() <= 5);
            if !prefix_only {
                assert!(n >= 1, "{rule}: cut at {cut}: {out:?}");
                assert!(!out.ends_with(leaked), "{rule}: cut at {cut}: {out:?}");
            }
        }
    }
}

#[test]
fn ordinary_text_is_left_alone() {
    let r = Redactor::new();
    for s in [
        "POST /v1/chat/completions HTTP/1.1\r\nHost: api.openai.com\r\nContent-Type: application/json\r\nContent-Length: 10\r\n\r\n",
        r#"{"model":"gpt-4o","max_tokens":100,"messages":[{"role":"user","content":"ask me a question"}]}"#,
        "HTTP/1.1 200 OK\r\nx-ratelimit-remaining-tokens: 100\r\nanthropic-ratelimit-tokens-remaining: 5\r\n\r\n",
        r#"{"usage":{"prompt_tokens":12,"completion_tokens":3,"total_tokens":15}}"#,
        "task-management is a skill; risk-assessment too",
    ] {
        let (out, n) = r.redact(s.as_bytes());
        assert_eq!(n, 0, "{}", String::from_utf8_lossy(&out));
        assert_eq!(out, s.as_bytes());
    }
}

#[test]
fn arbitrary_bytes_are_fine() {
    let r = Redactor::new();
    let mut data = vec![0xffu8, 0xfe, 0x00, 0x80];
    data.extend_from_slice(
        b"\nAuthorization: Bearer \xff\xfeabc\r\nk sk-abcdefghijklmnopqrstuvwx\xc3",
    );
    let (out, n) = r.redact(&data);
    assert_eq!(n, 2);
    assert!(!out.windows(6).any(|w| w == b"abcdef"));
    assert!(out.starts_with(&[0xff, 0xfe, 0x00, 0x80]));
}
