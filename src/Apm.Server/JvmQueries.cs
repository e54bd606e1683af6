using System.Globalization;
using Apm.Influx;
using Microsoft.Extensions.Options;

namespace Apm.Server;

/// <summary>
/// The JVM list and metric series read from InfluxDB, shared by the JSON API and the dashboard pages so that both
/// answer the same thing. Each call is one InfluxDB HTTP request (several statements at most).
/// </summary>
public sealed class JvmQueries(InfluxQueryClient influx, IOptions<ApiOptions> options)
{
    /// <summary>The measurement holding each JVM's identity and state.</summary>
    public const string InfoMeasurement = "apm.jvm.info";

    /// <summary>The API settings in force (stale threshold, lookback, points per series).</summary>
    public ApiOptions Options => options.Value;

    /// <summary>
    /// Every JVM with a sample or status in the last <paramref name="lookback"/>, sorted by host and id; only the JVM
    /// <paramref name="jvmId"/> when given (then the query reads that JVM's series alone).
    /// </summary>
    public async Task<IReadOnlyList<JvmSummary>> ListJvmsAsync(TimeSpan lookback, CancellationToken ct, string? jvmId = null)
    {
        var o = options.Value;
        var results = (await influx.QueryAsync(ListQuery(lookback, jvmId), ct).ConfigureAwait(false)).Results;
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
        return list;
    }

    /// <summary>
    /// The JVM's command line (main class or jar and its arguments, as the JVM reports it: untrusted text), or null when
    /// none was stored in the last <paramref name="lookback"/>. One small query over the JVM's own series.
    /// </summary>
    public async Task<string?> CommandLineAsync(string id, TimeSpan lookback, CancellationToken ct)
    {
        ArgumentNullException.ThrowIfNull(id);
        var query = string.Create(CultureInfo.InvariantCulture,
            $"SELECT last(\"java_command\") AS \"java_command\" FROM {InfluxQl.QuoteIdentifier(InfoMeasurement)} WHERE \"jvm_id\" = {InfluxQl.QuoteString(id)} AND time > now() - {(long)lookback.TotalSeconds}s");
        var result = await influx.QueryAsync(query, ct).ConfigureAwait(false);
        var s = result.Series.FirstOrDefault();
        return s is null || s.Values.Count == 0 ? null : s.GetString(0, "java_command");
    }

    /// <summary>The InfluxQL behind <see cref="ListJvmsAsync"/> (four statements over the info measurement; benchmarks time it alone).</summary>
    public static string ListQuery(TimeSpan lookback, string? jvmId = null)
    {
        var window = string.Create(CultureInfo.InvariantCulture, $"time > now() - {(long)lookback.TotalSeconds}s");
        if (jvmId is not null) window += $" AND \"jvm_id\" = {InfluxQl.QuoteString(jvmId)}";
        var from = $"FROM {InfluxQl.QuoteIdentifier(InfoMeasurement)} WHERE {window} GROUP BY \"jvm_id\", \"host\"";
        return $"SELECT last(\"status\") AS \"status\" {from}; SELECT first(\"status\") AS \"status\" {from}; " +
               $"SELECT last(\"main_class\") AS \"main_class\", last(\"jvm_version\") AS \"jvm_version\", last(\"jvm_vendor\") AS \"jvm_vendor\", last(\"gc\") AS \"gc\", last(\"pid\") AS \"pid\" {from}; " +
               $"SELECT last(\"reason\") AS \"reason\" {from}";
    }

    /// <summary>
    /// The step that keeps a range within <paramref name="maxPoints"/> points (whole seconds), or null when raw points
    /// at the collector's usual 2-second interval already fit.
    /// </summary>
    public static TimeSpan? ChooseStep(DateTimeOffset from, DateTimeOffset to, int maxPoints)
    {
        var perPoint = (to - from) / Math.Max(1, maxPoints);
        return perPoint > TimeSpan.FromSeconds(2) ? TimeSpan.FromSeconds(Math.Ceiling(perPoint.TotalSeconds)) : null;
    }

    /// <summary>
    /// One metric of one JVM between <paramref name="from"/> and <paramref name="to"/>: raw points, or the mean per
    /// <paramref name="step"/> when given (InfluxDB does the downsampling, so the answer stays small for long ranges).
    /// </summary>
    public async Task<MetricResponse> MetricAsync(string id, string metric, DateTimeOffset from, DateTimeOffset to, TimeSpan? step, CancellationToken ct)
    {
        ArgumentNullException.ThrowIfNull(id);
        ArgumentNullException.ThrowIfNull(metric);
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
        return new MetricResponse(id, metric, ApiEndpoints.UnitOf(metric), from, to, stepLabel, series);
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
}
