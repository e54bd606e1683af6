namespace Apm.Influx;

/// <summary>
/// Where and how to reach InfluxDB through its v1 HTTP API (served by 1.x, by 2.x's compatibility
/// endpoints and by 3.x). Bound from configuration; credentials are never logged.
/// </summary>
public sealed class InfluxOptions
{
    /// <summary>Configuration section name.</summary>
    public const string SectionName = "Influx";

    /// <summary>Base URL, e.g. http://127.0.0.1:8086 (a path prefix behind a proxy is kept).</summary>
    public Uri? Url { get; set; }

    /// <summary>Database (on 2.x: the bucket mapped through DBRP).</summary>
    public string Database { get; set; } = "apm";

    /// <summary>Retention policy; null writes to the database's default one.</summary>
    public string? RetentionPolicy { get; set; }

    /// <summary>v1 user, sent with <see cref="Password"/> as HTTP Basic authentication (never in the URL).</summary>
    public string? Username { get; set; }

    /// <summary>v1 password.</summary>
    public string? Password { get; set; }

    /// <summary>2.x/3.x token, sent as "Authorization: Token x"; wins over Username/Password.</summary>
    public string? Token { get; set; }

    /// <summary>Time limit of one HTTP attempt (a write may take several attempts).</summary>
    public TimeSpan Timeout { get; set; } = TimeSpan.FromSeconds(30);

    /// <summary>Retries after the first attempt of a batch on connection errors, 5xx and 429.</summary>
    public int MaxRetries { get; set; } = 12;

    /// <summary>First backoff delay; doubles each retry, with jitter, up to <see cref="RetryMaxDelay"/>.</summary>
    public TimeSpan RetryBaseDelay { get; set; } = TimeSpan.FromMilliseconds(200);

    /// <summary>Largest backoff delay, also the cap on a server's Retry-After.</summary>
    public TimeSpan RetryMaxDelay { get; set; } = TimeSpan.FromSeconds(10);

    /// <summary>Most points per HTTP request; larger writes are split at line boundaries (InfluxDB suggests 5,000).</summary>
    public int BatchSize { get; set; } = 5000;

    /// <summary>Largest query response read into memory; a bigger one fails with a clear error instead of exhausting memory.</summary>
    public long MaxQueryResponseBytes { get; set; } = 64L * 1024 * 1024;

    /// <summary>Throws with the reason when a setting cannot work.</summary>
    public void Validate()
    {
        if (Url is null) throw new InvalidOperationException("Influx: Url is required (e.g. http://127.0.0.1:8086).");
        if (!Url.IsAbsoluteUri || (Url.Scheme != Uri.UriSchemeHttp && Url.Scheme != Uri.UriSchemeHttps))
            throw new InvalidOperationException($"Influx: Url must be an absolute http(s) URL, not '{RedactedUrl(Url)}'.");
        if (string.IsNullOrWhiteSpace(Database)) throw new InvalidOperationException("Influx: Database is required.");
        if (Timeout <= TimeSpan.Zero) throw new InvalidOperationException("Influx: Timeout must be positive.");
        if (MaxRetries < 0) throw new InvalidOperationException("Influx: MaxRetries must not be negative.");
        if (BatchSize < 1) throw new InvalidOperationException("Influx: BatchSize must be at least 1.");
        if (RetryBaseDelay < TimeSpan.Zero || RetryMaxDelay < RetryBaseDelay)
            throw new InvalidOperationException("Influx: RetryBaseDelay must be >= 0 and <= RetryMaxDelay.");
        if (MaxQueryResponseBytes < 1024) throw new InvalidOperationException("Influx: MaxQueryResponseBytes must be at least 1024.");
        if (Username is null != Password is null) throw new InvalidOperationException("Influx: set both Username and Password, or neither.");
    }

    /// <summary>The URL without user info, safe to log.</summary>
    public static string RedactedUrl(Uri? url)
    {
        if (url is null) return "(none)";
        if (!url.IsAbsoluteUri || string.IsNullOrEmpty(url.UserInfo)) return url.ToString();
        return new UriBuilder(url) { UserName = "", Password = "" }.Uri.ToString();
    }

    /// <summary>Shows the target, never the secrets.</summary>
    public override string ToString() =>
        $"{RedactedUrl(Url)} db={Database} rp={RetentionPolicy ?? "(default)"} auth={(Token != null ? "token" : Username != null ? "basic" : "none")}";
}
