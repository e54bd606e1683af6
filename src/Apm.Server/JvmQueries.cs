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
    private int _lastCount;

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
        var answer = new JvmListAnswer(Volatile.Read(ref _lastCount));
        await influx.QueryAsync(ListQuery(lookback, jvmId), answer, ct).ConfigureAwait(false);
        var now = DateTimeOffset.UtcNow;
        var list = new List<JvmSummary>(answer.Jvms.Count);
        foreach (var (id, j) in answer.Jvms)
        {
            if (j.LastNs is not { } lastNs) continue; // only JVMs with a status in the window
            var lastSeen = TimeOf(lastNs);
            var status = j.Status ?? "unknown";
            if (status == "live" && now - lastSeen > o.StaleAfter) status = "stale";
            list.Add(new JvmSummary(
                id,
                j.Host ?? string.Empty,
                (int)(j.Pid ?? 0),
                j.MainClass ?? string.Empty,
                j.JvmVersion ?? string.Empty,
                j.JvmVendor ?? string.Empty,
                j.Gc ?? string.Empty,
                j.FirstNs is { } firstNs ? TimeOf(firstNs) : lastSeen,
                lastSeen,
                status,
                status is "unreadable" or "gone" ? j.Reason : null));
        }

        if (jvmId is null) Volatile.Write(ref _lastCount, list.Count);
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
    private static DateTimeOffset TimeOf(long nanoseconds) => DateTimeOffset.UnixEpoch.AddTicks(nanoseconds / 100);

    /// <summary>One JVM as the four statements of <see cref="ListQuery"/> describe it (each series' first row).</summary>
    private sealed class SeenJvm
    {
        public string? Host { get; set; }
        public long? LastNs { get; set; }
        public string? Status { get; set; }
        public long? FirstNs { get; set; }
        public long? Pid { get; set; }
        public string? MainClass { get; set; }
        public string? JvmVersion { get; set; }
        public string? JvmVendor { get; set; }
        public string? Gc { get; set; }
        public string? Reason { get; set; }
    }

    /// <summary>
    /// The JVM list's answer folded per JVM as it is read: a fleet's answer is four series per JVM, and held as series
    /// and rows it cost several times its size on every fleet read.
    /// </summary>
    private sealed class JvmListAnswer(int expectedJvms) : QueryAnswerSink
    {
        private SeenJvm? _jvm;
        private int _statement;
        private IReadOnlyList<string> _columns = [];
        private bool _firstRow;

        public Dictionary<string, SeenJvm> Jvms { get; } = new(expectedJvms, StringComparer.Ordinal);

        public override void Series(int statement, string name, IReadOnlyDictionary<string, string> tags, IReadOnlyList<string> columns)
        {
            _jvm = null;
            if (statement is < 0 or > 3 || !tags.TryGetValue("jvm_id", out var id)) return;
            if (!Jvms.TryGetValue(id, out var jvm)) Jvms[id] = jvm = new SeenJvm();
            _jvm = jvm;
            _statement = statement;
            _columns = columns;
            _firstRow = true;
            if (statement == 0) jvm.Host = tags.GetValueOrDefault("host");
        }

        public override void Row(ReadOnlySpan<InfluxValue> cells)
        {
            if (_jvm is not { } j || !_firstRow) return;
            _firstRow = false;
            var time = Integer(cells, "time") ?? 0;
            switch (_statement)
            {
                case 0:
                    j.LastNs = time;
                    j.Status = Text(cells, "status");
                    break;
                case 1:
                    j.FirstNs = time;
                    break;
                case 2:
                    j.Pid = Integer(cells, "pid");
                    j.MainClass = Text(cells, "main_class");
                    j.JvmVersion = Text(cells, "jvm_version");
                    j.JvmVendor = Text(cells, "jvm_vendor");
                    j.Gc = Text(cells, "gc");
                    break;
                default:
                    j.Reason = Text(cells, "reason");
                    break;
            }
        }

        private InfluxValue? Cell(ReadOnlySpan<InfluxValue> cells, string column) =>
            IndexOf(_columns, column) is var i && i >= 0 && i < cells.Length ? cells[i] : null;

        private string? Text(ReadOnlySpan<InfluxValue> cells, string column) => Cell(cells, column)?.AsText();

        private long? Integer(ReadOnlySpan<InfluxValue> cells, string column) => Cell(cells, column)?.AsInt64();
    }
}
