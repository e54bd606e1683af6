using System.Globalization;
using System.Text.RegularExpressions;
using Apm.Influx;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Routing;
using Microsoft.Extensions.Options;

namespace Apm.Server;

/// <summary>The JSON API over InfluxDB: /api/jvms, /api/jvms/{id}/metrics/{metric}, /healthz. See docs/api.md.</summary>
public static partial class ApiEndpoints
{
    private const string InfoMeasurement = "apm.jvm.info";

    public static IEndpointRouteBuilder MapApmApi(this IEndpointRouteBuilder app)
    {
        app.MapGet("/healthz", HealthAsync);
        app.MapGet("/api/jvms", ListJvmsAsync);
        app.MapGet("/api/jvms/{id}/metrics/{metric}", MetricAsync);
        app.MapApmAlerts();
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

    private static async Task<IResult> ListJvmsAsync(InfluxQueryClient influx, IOptions<ApiOptions> options, HttpRequest request, CancellationToken ct)
    {
        var o = options.Value;
        var lookback = o.JvmLookback;
        if (request.Query.TryGetValue("since", out var sinceText) && !string.IsNullOrEmpty(sinceText))
        {
            if (!TryParseTime(sinceText!, DateTimeOffset.UtcNow, out var since)) return BadRequest("since: expected ISO 8601 time, Unix milliseconds or a duration like -6h");
            lookback = DateTimeOffset.UtcNow - since;
        }

        var window = string.Create(CultureInfo.InvariantCulture, $"time > now() - {(long)lookback.TotalSeconds}s");
        var from = $"FROM {InfluxQl.QuoteIdentifier(InfoMeasurement)} WHERE {window} GROUP BY \"jvm_id\", \"host\"";
        var query = $"SELECT last(\"status\") AS \"status\" {from}; SELECT first(\"status\") AS \"status\" {from}; " +
                    $"SELECT last(\"main_class\") AS \"main_class\", last(\"jvm_version\") AS \"jvm_version\", last(\"jvm_vendor\") AS \"jvm_vendor\", last(\"gc\") AS \"gc\", last(\"pid\") AS \"pid\" {from}; " +
                    $"SELECT last(\"reason\") AS \"reason\" {from}";
        var results = (await influx.QueryAsync(query, ct).ConfigureAwait(false)).Results;
        var last = ByJvm(results, 0);
        var first = ByJvm(results, 1);
        var info = ByJvm(results, 2);
        var reasons = ByJvm(results, 3);
        var now = DateTimeOffset.UtcNow;
        var list = new List<JvmSummary>();
        foreach (var (id, l) in last)
        {
            var lastSeen = TimeOf(l);
            var status = l.GetString(0, "status") ?? "unknown";
            if (status == "live" && now - lastSeen > o.StaleAfter) status = "stale";
            var firstSeen = first.TryGetValue(id, out var f) ? TimeOf(f) : lastSeen;
            var i = info.GetValueOrDefault(id);
            list.Add(new JvmSummary(
                id,
                l.Tags.GetValueOrDefault("host") ?? string.Empty,
                (int)(i?.GetInt64(0, "pid") ?? 0),
                i?.GetString(0, "main_class") ?? string.Empty,
                i?.GetString(0, "jvm_version") ?? string.Empty,
                i?.GetString(0, "jvm_vendor") ?? string.Empty,
                i?.GetString(0, "gc") ?? string.Empty,
                firstSeen,
                lastSeen,
                status,
                status is "unreadable" or "gone" ? reasons.GetValueOrDefault(id)?.GetString(0, "reason") : null));
        }

        list.Sort((a, b) => string.CompareOrdinal(a.Host, b.Host) is var c && c != 0 ? c : string.CompareOrdinal(a.Id, b.Id));
        return Results.Json<IReadOnlyList<JvmSummary>>(list, ApiJsonContext.Default.IReadOnlyListJvmSummary);
    }

    private static async Task<IResult> MetricAsync(string id, string metric, InfluxQueryClient influx, IOptions<ApiOptions> options, HttpRequest request, CancellationToken ct)
    {
        if (!MetricName().IsMatch(metric)) return BadRequest("metric: expected a name like jvm.memory.used");
        var now = DateTimeOffset.UtcNow;
        var to = now;
        var from = now.AddHours(-1);
        if (request.Query.TryGetValue("to", out var toText) && !string.IsNullOrEmpty(toText) && !TryParseTime(toText!, now, out to))
            return BadRequest("to: expected ISO 8601 time, Unix milliseconds or a duration like -1h");
        if (request.Query.TryGetValue("from", out var fromText) && !string.IsNullOrEmpty(fromText) && !TryParseTime(fromText!, now, out from))
            return BadRequest("from: expected ISO 8601 time, Unix milliseconds or a duration like -1h");
        if (from >= to) return BadRequest("from must be before to");

        TimeSpan? step = null;
        if (request.Query.TryGetValue("step", out var stepText) && !string.IsNullOrEmpty(stepText))
        {
            if (!TryParseDuration(stepText!, out var s) || s < TimeSpan.FromSeconds(1)) return BadRequest("step: expected a duration of at least 1s, like 10s or 5m");
            step = s;
        }
        else
        {
            var perPoint = (to - from) / Math.Max(1, options.Value.MaxPointsPerSeries);
            if (perPoint > TimeSpan.FromSeconds(2)) step = TimeSpan.FromSeconds(Math.Ceiling(perPoint.TotalSeconds));
        }

        var where = string.Create(CultureInfo.InvariantCulture,
            $"WHERE \"jvm_id\" = {InfluxQl.QuoteString(id)} AND time >= {InfluxQl.Time(from)} AND time <= {InfluxQl.Time(to)}");
        var query = step is { } st
            ? string.Create(CultureInfo.InvariantCulture, $"SELECT mean(\"value\") AS \"value\" FROM {InfluxQl.QuoteIdentifier(metric)} {where} GROUP BY time({(long)st.TotalSeconds}s), * fill(none)")
            : $"SELECT \"value\" FROM {InfluxQl.QuoteIdentifier(metric)} {where} GROUP BY *";
        var results = (await influx.QueryAsync(query, ct).ConfigureAwait(false)).Results;
        var series = new List<MetricSeries>();
        if (results.Count > 0)
        {
            foreach (var s in results[0].Series)
            {
                var labels = s.Tags.Where(t => t.Key is not "jvm_id" and not "host" && !string.IsNullOrEmpty(t.Value))
                    .ToDictionary(t => t.Key, t => t.Value, StringComparer.Ordinal);
                var points = new List<double[]>(s.Values.Count);
                for (var row = 0; row < s.Values.Count; row++)
                {
                    if (s.GetDouble(row, "value") is { } v && s.GetTime(row) is { } t) points.Add([t / 1_000_000, v]);
                }

                series.Add(new MetricSeries(labels, points));
            }
        }

        var stepLabel = step is { } x ? string.Create(CultureInfo.InvariantCulture, $"{(long)x.TotalSeconds}s") : null;
        return Results.Json(new MetricResponse(id, metric, UnitOf(metric), from, to, stepLabel, series), ApiJsonContext.Default.MetricResponse);
    }

    /// <summary>The first row of each JVM's series in one statement's result.</summary>
    private static Dictionary<string, InfluxSeries> ByJvm(IReadOnlyList<InfluxStatementResult> results, int statement)
    {
        var map = new Dictionary<string, InfluxSeries>(StringComparer.Ordinal);
        if (results.Count <= statement) return map;
        foreach (var s in results[statement].Series)
        {
            if (s.Tags.TryGetValue("jvm_id", out var id) && s.Values.Count > 0) map[id] = s;
        }

        return map;
    }

    private static DateTimeOffset TimeOf(InfluxSeries series) => DateTimeOffset.UnixEpoch.AddTicks((series.GetTime(0) ?? 0) / 100);

    private static IResult BadRequest(string error) =>
        Results.Json(new ErrorResponse(error), ApiJsonContext.Default.ErrorResponse, statusCode: 400);

    /// <summary>Parses ISO 8601, Unix milliseconds, "now", or a duration relative to now ("-1h", "now-15m").</summary>
    internal static bool TryParseTime(string text, DateTimeOffset now, out DateTimeOffset time)
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
    internal static bool TryParseDuration(string text, out TimeSpan duration)
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

    [GeneratedRegex("^[a-z][a-z0-9_.]{0,99}$")]
    private static partial Regex MetricName();

    [GeneratedRegex("^([0-9]+)(ms|s|m|h|d|w)$")]
    private static partial Regex DurationPattern();
}
