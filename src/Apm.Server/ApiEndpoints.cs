using System.Globalization;
using System.Text.RegularExpressions;
using Apm.Influx;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Routing;

namespace Apm.Server;

/// <summary>The JSON API over InfluxDB: /api/jvms, /api/jvms/{id}/metrics/{metric}, alerts, commands, reports, /healthz. See docs/api.md.</summary>
public static partial class ApiEndpoints
{
    public static IEndpointRouteBuilder MapApmApi(this IEndpointRouteBuilder app)
    {
        app.MapGet("/healthz", HealthAsync);
        app.MapGet("/api/jvms", ListJvmsAsync);
        app.MapGet("/api/jvms/{id}/metrics/{metric}", MetricAsync);
        app.MapApmAlerts();
        app.MapApmReports();
        app.MapApmMetrics();
        app.MapApmHeapDumps();
        app.MapApmCommands();
        app.MapApmReportUpload();
        return app;
    }

    /// <summary>The unit of each metric the aggregator writes (UCUM, as OpenTelemetry does).</summary>
    public static string UnitOf(string metric) => metric switch
    {
        _ when metric.StartsWith("jvm.memory.", StringComparison.Ordinal) => "By",
        "jvm.gc.time" or "jvm.safepoint.time" or "jvm.uptime" => "s",
        "jvm.gc.overhead" => "1",
        "jvm.gc.collections" => "{collection}",
        "jvm.thread.count" or "jvm.thread.daemon.count" => "{thread}",
        "jvm.class.count" or "jvm.class.unloaded" => "{class}",
        "jvm.safepoint.count" => "{safepoint}",
        "jvm.finalizer.pending" or "jvm.finalizer.registered" or "jvm.class.instances" => "{object}",
        "jvm.class.bytes" => "By",
        _ => "1",
    };

    private static async Task<IResult> HealthAsync(InfluxWriter influx, IEnumerable<ICounterSource> sources, CancellationToken ct)
    {
        var checks = new Dictionary<string, string>(StringComparer.Ordinal);
        var healthy = await influx.PingAsync(ct).ConfigureAwait(false);
        checks["influxdb"] = healthy ? "ok" : "unreachable";

        var counters = new SortedDictionary<string, long>(StringComparer.Ordinal);
        foreach (var source in sources)
        {
            foreach (var (name, value) in source.ReadCounters()) counters[name] = value;
        }

        var body = new HealthResponse(healthy ? "ok" : "degraded", checks, counters);
        return Results.Json(body, ApiJsonContext.Default.HealthResponse, statusCode: healthy ? 200 : 503);
    }

    private static async Task<IResult> ListJvmsAsync(JvmQueries queries, HttpRequest request, CancellationToken ct)
    {
        var lookback = queries.Options.JvmLookback;
        if (request.Query.TryGetValue("since", out var sinceText) && !string.IsNullOrEmpty(sinceText))
        {
            if (!TryParseTime(sinceText!, DateTimeOffset.UtcNow, out var since)) return BadRequest("since: expected ISO 8601 time, Unix milliseconds or a duration like -6h");
            lookback = DateTimeOffset.UtcNow - since;
        }

        var list = await queries.ListJvmsAsync(lookback, ct).ConfigureAwait(false);
        return Results.Json(list, ApiJsonContext.Default.IReadOnlyListJvmSummary);
    }

    private static async Task<IResult> MetricAsync(string id, string metric, JvmQueries queries, HttpRequest request, CancellationToken ct)
    {
        if (!IsMetricName(metric)) return BadRequest("metric: expected a name like jvm.memory.used");
        var now = DateTimeOffset.UtcNow;
        var to = now;
        var from = now.AddHours(-1);
        if (request.Query.TryGetValue("to", out var toText) && !string.IsNullOrEmpty(toText) && !TryParseTime(toText!, now, out to))
            return BadRequest("to: expected ISO 8601 time, Unix milliseconds or a duration like -1h");
        if (request.Query.TryGetValue("from", out var fromText) && !string.IsNullOrEmpty(fromText) && !TryParseTime(fromText!, now, out from))
            return BadRequest("from: expected ISO 8601 time, Unix milliseconds or a duration like -1h");
        if (from >= to) return BadRequest("from must be before to");

        TimeSpan? step;
        if (request.Query.TryGetValue("step", out var stepText) && !string.IsNullOrEmpty(stepText))
        {
            if (!TryParseDuration(stepText!, out var s) || s < TimeSpan.FromSeconds(1)) return BadRequest("step: expected a duration of at least 1s, like 10s or 5m");
            step = s;
        }
        else
        {
            step = JvmQueries.ChooseStep(from, to, queries.Options.MaxPointsPerSeries);
        }

        var response = await queries.MetricAsync(id, metric, from, to, step, ct).ConfigureAwait(false);
        return Results.Json(response, ApiJsonContext.Default.MetricResponse);
    }

    private static IResult BadRequest(string error) =>
        Results.Json(new ErrorResponse(error), ApiJsonContext.Default.ErrorResponse, statusCode: 400);

    /// <summary>Parses ISO 8601, Unix milliseconds, "now", or a duration relative to now ("-1h", "now-15m").</summary>
    public static bool TryParseTime(string text, DateTimeOffset now, out DateTimeOffset time)
    {
        text = text.Trim();
        if (text == "now")
        {
            time = now;
            return true;
        }

        var rel = text.StartsWith("now", StringComparison.Ordinal) ? text[3..] : text;
        if (rel.StartsWith('-') && TryParseDuration(rel[1..], out var ago))
        {
            time = now - ago;
            return true;
        }

        if (long.TryParse(text, NumberStyles.None, CultureInfo.InvariantCulture, out var ms) && ms < 100_000_000_000_000)
        {
            time = DateTimeOffset.FromUnixTimeMilliseconds(ms);
            return true;
        }

        return DateTimeOffset.TryParse(text, CultureInfo.InvariantCulture, DateTimeStyles.AssumeUniversal | DateTimeStyles.AdjustToUniversal, out time);
    }

    /// <summary>Parses "30s", "5m", "2h", "1d", "1w" or a TimeSpan ("00:05:00").</summary>
    public static bool TryParseDuration(string text, out TimeSpan duration)
    {
        var m = DurationPattern().Match(text);
        if (m.Success && long.TryParse(m.Groups[1].Value, NumberStyles.None, CultureInfo.InvariantCulture, out var n) && n < 100_000_000)
        {
            duration = m.Groups[2].Value switch
            {
                "ms" => TimeSpan.FromMilliseconds(n),
                "s" => TimeSpan.FromSeconds(n),
                "m" => TimeSpan.FromMinutes(n),
                "h" => TimeSpan.FromHours(n),
                "d" => TimeSpan.FromDays(n),
                _ => TimeSpan.FromDays(7 * n),
            };
            return true;
        }

        return TimeSpan.TryParse(text, CultureInfo.InvariantCulture, out duration) && duration > TimeSpan.Zero;
    }

    /// <summary>Whether <paramref name="metric"/> looks like a metric name (lower-case dotted); guards InfluxQL identifiers.</summary>
    public static bool IsMetricName(string metric) => MetricName().IsMatch(metric);

    [GeneratedRegex("^[a-z][a-z0-9_.]{0,99}$")]
    private static partial Regex MetricName();

    [GeneratedRegex("^([0-9]+)(ms|s|m|h|d|w)$")]
    private static partial Regex DurationPattern();
}
