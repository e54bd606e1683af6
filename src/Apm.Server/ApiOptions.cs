namespace Apm.Server;

/// <summary>Settings of the HTTP API, bound from "Apm:Api" (env: Apm__Api__*).</summary>
public sealed class ApiOptions
{
    public const string Section = "Apm:Api";

    /// <summary>A JVM whose last sample is older than this, and that was not reported gone, shows as "stale".</summary>
    public TimeSpan StaleAfter { get; set; } = TimeSpan.FromSeconds(60);

    /// <summary>How far back /api/jvms looks for JVMs (override per request with ?since=).</summary>
    public TimeSpan JvmLookback { get; set; } = TimeSpan.FromDays(1);

    /// <summary>Most points per series a metrics query returns before the server downsamples (mean per step).</summary>
    public int MaxPointsPerSeries { get; set; } = 2_000;
}

/// <summary>Authentication, bound from "Apm:Auth". Without an API key the server refuses non-loopback addresses.</summary>
public sealed class AuthOptions
{
    public const string Section = "Apm:Auth";

    /// <summary>When set, /api/* requires it in the X-Api-Key header (or "Authorization: Bearer &lt;key&gt;").</summary>
    public string? ApiKey { get; set; }

    /// <summary>
    /// Dashboard users: name → password hash made by <see cref="PasswordHasher.Hash"/> (never a clear password). When any
    /// is set, every page needs a login (cookie) and /api/* accepts that cookie or the API key.
    /// </summary>
    public Dictionary<string, string> Users { get; set; } = new(StringComparer.Ordinal);

    /// <summary>Whether any authentication is configured (then listening beyond loopback is allowed).</summary>
    public bool Enabled => !string.IsNullOrEmpty(ApiKey) || Users.Count > 0;

    /// <summary>Whether dashboard users (cookie login) are configured.</summary>
    public bool HasUsers => Users.Count > 0;
}
