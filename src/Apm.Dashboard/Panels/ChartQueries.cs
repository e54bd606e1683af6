using System.Globalization;
using System.Text;
using Apm.Influx;

namespace Apm.Dashboard.Panels;

/// <summary>
/// The data of one chart, aligned for the browser: one time axis (Unix ms) and one value array per series (null where
/// a series has no point). <see cref="MaxIndex"/> is the limit line's index, or -1.
/// </summary>
public sealed record ChartData(
    string Id,
    string Title,
    string Unit,
    bool Stacked,
    long StepMs,
    IReadOnlyList<string> Labels,
    IReadOnlyList<long> X,
    IReadOnlyList<double?[]> Y,
    int MaxIndex);

/// <summary>The JVM page's charts for a range, and the latest sample time among them.</summary>
public sealed record JvmCharts(string JvmId, IReadOnlyList<ChartData> Panels, long LastSampleMs);

/// <summary>
/// Reads every panel of the JVM page in one InfluxDB request (one statement per series definition), downsampled by
/// InfluxDB (mean per step, or the per-second rate of a counter's maximum per step) so a day of 1-second data
/// returns a few hundred points per series. A range that starts before the raw data's retention
/// (<see cref="DashboardOptions.LongRangeAfter"/>) reads the downsampled policy (<see cref="DashboardOptions.LongRangePolicy"/>)
/// when one is configured.
/// </summary>
public sealed class ChartQueries(InfluxQueryClient influx, PanelDefinitions definitions, InfluxOptions? influxOptions = null, DashboardOptions? options = null,
    TimeProvider? time = null)
{
    private readonly TimeProvider _time = time ?? TimeProvider.System;

    /// <summary>The panels in force.</summary>
    public IReadOnlyList<PanelDefinition> Panels => definitions.Jvm.Panels;

    /// <summary>Builds the InfluxQL of every panel (exposed so benchmarks can time the raw queries alone).</summary>
    public string BuildQuery(string jvmId, DateTimeOffset from, DateTimeOffset to, TimeSpan? step)
    {
        ArgumentNullException.ThrowIfNull(jvmId);
        var longRange = LongRangeSource(from);
        // The downsampled copy has one point per 5 minutes: never ask it for raw points or a finer step.
        if (longRange is not null && (step is null || step < LongRangeStep)) step = LongRangeStep;
        var sb = new StringBuilder();
        foreach (var p in definitions.Jvm.Panels)
        {
            foreach (var s in p.Series) Append(sb, s, jvmId, from, to, step, longRange);
            if (p.Max is { } m) Append(sb, m, jvmId, from, to, step, longRange);
        }

        return sb.ToString();
    }

    /// <summary>The step of the downsampling continuous query in docs/operations.md.</summary>
    public static TimeSpan LongRangeStep { get; } = TimeSpan.FromMinutes(5);

    /// <summary>The quoted "database"."policy" prefix when a chart from <paramref name="from"/> must read the downsampled copy; else null.</summary>
    public string? LongRangeSource(DateTimeOffset from) =>
        options?.LongRangePolicy is { Length: > 0 } rp && influxOptions is not null && from < _time.GetUtcNow() - options.LongRangeAfter
            ? InfluxQl.QuoteIdentifier(influxOptions.Database) + "." + InfluxQl.QuoteIdentifier(rp) + "."
            : null;

    /// <summary>Every panel for <paramref name="jvmId"/> between the times; <paramref name="step"/> null = raw points.</summary>
    public async Task<JvmCharts> ReadAsync(string jvmId, DateTimeOffset from, DateTimeOffset to, TimeSpan? step, CancellationToken ct)
    {
        var result = await influx.QueryAsync(BuildQuery(jvmId, from, to, step), ct).ConfigureAwait(false);
        var statement = 0;
        var panels = new List<ChartData>();
        long lastSample = 0;
        foreach (var p in definitions.Jvm.Panels)
        {
            var series = new List<(string Label, SortedDictionary<long, double> Points)>();
            foreach (var s in p.Series)
            {
                var read = Read(result, statement++, s);
                if (s.Top > 0) read = read.OrderByDescending(r => Growth(r.Points)).ThenBy(r => r.Label, StringComparer.Ordinal).Take(s.Top).ToList();
                series.AddRange(read);
            }

            var maxIndex = -1;
            if (p.Max is { } m)
            {
                var sum = new SortedDictionary<long, double>();
                foreach (var (_, points) in Read(result, statement++, m))
                {
                    foreach (var (t, v) in points) sum[t] = sum.GetValueOrDefault(t) + v;
                }

                if (sum.Count > 0)
                {
                    maxIndex = series.Count;
                    series.Add((m.Label ?? "max", sum));
                }
            }

            var x = new SortedSet<long>();
            foreach (var (_, points) in series) x.UnionWith(points.Keys);
            if (x.Count > 0) lastSample = Math.Max(lastSample, x.Max);
            var xs = x.ToArray();
            var index = new Dictionary<long, int>(xs.Length);
            for (var i = 0; i < xs.Length; i++) index[xs[i]] = i;
            var ys = new List<double?[]>(series.Count);
            foreach (var (_, points) in series)
            {
                var y = new double?[xs.Length];
                foreach (var (t, v) in points) y[index[t]] = v;
                ys.Add(y);
            }

            panels.Add(new ChartData(p.Id, p.Title, p.Unit, p.Stacked, (long)(step?.TotalMilliseconds ?? 0), series.Select(s => s.Label).ToList(), xs, ys, maxIndex));
        }

        return new JvmCharts(jvmId, panels, lastSample);
    }

    private static double Growth(SortedDictionary<long, double> points) => points.Count == 0 ? 0 : points.Last().Value - points.First().Value;

    /// <summary>One statement's series, merged by label (series with the same label add up).</summary>
    private static List<(string Label, SortedDictionary<long, double> Points)> Read(InfluxQueryResult result, int statement, SeriesDefinition def)
    {
        var byLabel = new Dictionary<string, SortedDictionary<long, double>>(StringComparer.Ordinal);
        var order = new List<string>();
        var r = result.Results.FirstOrDefault(x => x.StatementId == statement);
        if (r is null) return [];
        foreach (var s in r.Series)
        {
            var label = def.LabelFor(s.Tags);
            if (!byLabel.TryGetValue(label, out var points))
            {
                points = [];
                byLabel[label] = points;
                order.Add(label);
            }

            for (var row = 0; row < s.Values.Count; row++)
            {
                if (s.GetDouble(row, "value") is { } v && s.GetTime(row) is { } t)
                {
                    var ms = t / 1_000_000;
                    points[ms] = points.GetValueOrDefault(ms) + v;
                }
            }
        }

        order.Sort(StringComparer.Ordinal);
        return order.Select(l => (l, byLabel[l])).ToList();
    }

    private static void Append(StringBuilder sb, SeriesDefinition s, string jvmId, DateTimeOffset from, DateTimeOffset to, TimeSpan? step, string? longRange)
    {
        var where = $"WHERE \"jvm_id\" = {InfluxQl.QuoteString(jvmId)} AND time >= {InfluxQl.Time(from)} AND time <= {InfluxQl.Time(to)}{s.WhereClause()}";
        var m = longRange + InfluxQl.QuoteIdentifier(s.Metric);
        if (step is { } st)
        {
            // The downsampled copy keeps each 5 minutes' mean as "value" and maximum as "max" (a counter's rate needs the maximum).
            var select = s.Rate ? $"non_negative_derivative(max(\"{(longRange is null ? "value" : "max")}\"), 1s)" : "mean(\"value\")";
            sb.Append(CultureInfo.InvariantCulture, $"SELECT {select} AS \"value\" FROM {m} {where} GROUP BY time({(long)st.TotalSeconds}s), * fill(none);");
        }
        else
        {
            var select = s.Rate ? "non_negative_derivative(\"value\", 1s) AS \"value\"" : "\"value\"";
            sb.Append(CultureInfo.InvariantCulture, $"SELECT {select} FROM {m} {where} GROUP BY *;");
        }
    }
}
