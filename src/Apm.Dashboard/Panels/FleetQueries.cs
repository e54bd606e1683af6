using System.Globalization;
using System.Text;
using Apm.Influx;
using Apm.Server;

namespace Apm.Dashboard.Panels;

/// <summary>One JVM's row on the fleet page: identity, the column values (and maxima), firing alerts, sparkline.</summary>
public sealed record FleetRow(JvmSummary Jvm, IReadOnlyList<double?> Values, IReadOnlyList<double?> Maxima, IReadOnlyList<string> FiringRules, IReadOnlyList<double> Sparkline);

/// <summary>The fleet at one moment: rows sorted by host and id, when it was read, and the newest sample seen.</summary>
public sealed record FleetSnapshot(IReadOnlyList<FleetRow> Rows, DateTimeOffset TakenAt, DateTimeOffset? NewestSample, TimeSpan StaleAfter)
{
    /// <summary>True when JVMs are known but none has sent a sample for longer than the stale threshold (the pipeline stopped).</summary>
    public bool IsStale => NewestSample is { } n && TakenAt - n > StaleAfter;
}

/// <summary>
/// Reads the fleet page in three concurrent InfluxDB requests: the JVM list, every column and sparkline (one
/// multi-statement query grouped by JVM, so the cost does not grow with one request per JVM), and the firing alerts.
/// </summary>
public sealed class FleetQueries(InfluxQueryClient influx, JvmQueries jvms, AlertQueries alerts, PanelDefinitions definitions)
{
    private int _lastCount;

    /// <summary>A live JVM without a sample for this long counts as stale.</summary>
    public TimeSpan StaleAfter => jvms.Options.StaleAfter;

    /// <summary>The column definitions in force.</summary>
    public FleetDefinition Definition => definitions.Fleet;

    /// <summary>The InfluxQL of the columns and sparkline (exposed so benchmarks can time the raw queries alone).</summary>
    public string BuildQuery()
    {
        var sb = new StringBuilder();
        foreach (var c in definitions.Fleet.Columns)
        {
            AppendLatest(sb, c.AsSeries());
            if (c.Max is { } m) AppendLatest(sb, m);
        }

        if (definitions.Fleet.Sparkline is { } s)
        {
            var by = s.SumBy is null ? string.Empty : ", " + InfluxQl.QuoteIdentifier(s.SumBy);
            sb.Append(CultureInfo.InvariantCulture,
                $"SELECT mean(\"value\") AS \"value\" FROM {InfluxQl.QuoteIdentifier(s.Metric)} WHERE time > now() - {(long)s.WindowSpan.TotalSeconds}s{s.WhereClause()} GROUP BY time({(long)(s.StepSpan ?? TimeSpan.FromMinutes(1)).TotalSeconds}s), \"jvm_id\"{by} fill(none);");
        }

        return sb.ToString();
    }

    /// <summary>Reads the whole fleet now.</summary>
    public async Task<FleetSnapshot> ReadAsync(CancellationToken ct)
    {
        var columns = definitions.Fleet.Columns;
        // Sized for the fleet of the last read: grown from empty, the map went through a run of ever larger arrays.
        var perJvm = new FleetAnswer(columns, definitions.Fleet.Sparkline is not null, Volatile.Read(ref _lastCount));
        var listTask = jvms.ListJvmsAsync(jvms.Options.JvmLookback, ct);
        var valuesTask = influx.QueryAsync(BuildQuery(), perJvm, ct);
        var alertsTask = alerts.ListAsync("firing", null, ct);
        await Task.WhenAll(listTask, valuesTask, alertsTask).ConfigureAwait(false);
        var list = await listTask.ConfigureAwait(false);
        var firing = (await alertsTask.ConfigureAwait(false)).GroupBy(a => a.JvmId, StringComparer.Ordinal)
            .ToDictionary(g => g.Key, g => (IReadOnlyList<string>)g.Select(a => a.Rule).Distinct(StringComparer.Ordinal).ToList(), StringComparer.Ordinal);

        var rows = new List<FleetRow>(list.Count);
        DateTimeOffset? newest = null;
        foreach (var j in list)
        {
            if (newest is null || j.LastSeen > newest) newest = j.LastSeen;
            var found = perJvm.Jvms.GetValueOrDefault(j.Id);
            rows.Add(new FleetRow(
                j,
                found?.Values ?? new double?[columns.Count],
                found?.Maxima ?? new double?[columns.Count],
                firing.GetValueOrDefault(j.Id) ?? [],
                found?.SparklineInTimeOrder() ?? []));
        }

        Volatile.Write(ref _lastCount, perJvm.Jvms.Count);
        return new FleetSnapshot(rows, DateTimeOffset.UtcNow, newest, jvms.Options.StaleAfter);
    }

    private static void AppendLatest(StringBuilder sb, SeriesDefinition s)
    {
        var by = s.SumBy is null ? string.Empty : ", " + InfluxQl.QuoteIdentifier(s.SumBy);
        sb.Append(CultureInfo.InvariantCulture,
            $"SELECT {s.Reduce}(\"value\") AS \"value\" FROM {InfluxQl.QuoteIdentifier(s.Metric)} WHERE time > now() - {(long)s.WindowSpan.TotalSeconds}s{s.WhereClause()} GROUP BY \"jvm_id\"{by};");
    }

    /// <summary>
    /// The columns' and sparkline's answer folded per JVM as it is read (statements in the order of
    /// <see cref="BuildQuery"/>: each column, its maximum when it has one, then the sparkline). A column's value is the
    /// first row of each series, added over the series that differ by the sumBy tag; the sparkline sums those per
    /// time bucket. Holding the answer as series and rows cost about ten times its size per page.
    /// </summary>
    private sealed class FleetAnswer : QueryAnswerSink
    {
        private readonly int _columns;
        // Per statement: the column it fills (>= 0 value, < 0 maximum as ~index), or int.MaxValue for the sparkline.
        private readonly List<int> _targets = [];
        private PerJvm? _jvm;
        private int _target = -1;
        private int _valueColumn = -1;
        private int _timeColumn = -1;
        private int _row;

        public FleetAnswer(IReadOnlyList<FleetColumnDefinition> columns, bool sparkline, int expectedJvms)
        {
            Jvms = new Dictionary<string, PerJvm>(expectedJvms, StringComparer.Ordinal);
            _columns = columns.Count;
            for (var i = 0; i < columns.Count; i++)
            {
                _targets.Add(i);
                if (columns[i].Max is not null) _targets.Add(~i);
            }

            if (sparkline) _targets.Add(int.MaxValue);
        }

        public Dictionary<string, PerJvm> Jvms { get; }

        public override void Series(int statement, string name, IReadOnlyDictionary<string, string> tags, IReadOnlyList<string> columns)
        {
            _jvm = null;
            _row = 0;
            if ((uint)statement >= (uint)_targets.Count || !tags.TryGetValue("jvm_id", out var id)) return;
            _target = _targets[statement];
            _valueColumn = IndexOf(columns, "value");
            _timeColumn = IndexOf(columns, "time");
            if (_valueColumn < 0) return;
            if (!Jvms.TryGetValue(id, out _jvm)) Jvms[id] = _jvm = new PerJvm(_columns);
        }

        public override void Row(ReadOnlySpan<InfluxValue> cells)
        {
            if (_jvm is null || _valueColumn >= cells.Length || cells[_valueColumn].ValueKind != System.Text.Json.JsonValueKind.Number)
            {
                _row++;
                return;
            }

            var v = cells[_valueColumn].GetDouble();
            if (_target == int.MaxValue)
            {
                if (_timeColumn >= 0 && _timeColumn < cells.Length && cells[_timeColumn].ValueKind == System.Text.Json.JsonValueKind.Number
                    && cells[_timeColumn].TryGetInt64(out var t))
                {
                    _jvm.Sparkline.Add((t, v));
                }
            }
            else if (_row == 0)
            {
                var into = _target >= 0 ? _jvm.Values : _jvm.Maxima;
                var i = _target >= 0 ? _target : ~_target;
                into[i] = (into[i] ?? 0) + v;
            }

            _row++;
        }
    }

    /// <summary>One JVM's part of the answer.</summary>
    private sealed class PerJvm(int columns)
    {
        public double?[] Values { get; } = new double?[columns];

        public double?[] Maxima { get; } = new double?[columns];

        /// <summary>(time, value) of every sparkline row, of every sumBy series, in answer order.</summary>
        public List<(long Time, double Value)> Sparkline { get; } = [];

        /// <summary>The sparkline's buckets in time order, the series of one bucket added.</summary>
        public IReadOnlyList<double> SparklineInTimeOrder()
        {
            if (Sparkline.Count == 0) return [];
            Sparkline.Sort((a, b) => a.Time.CompareTo(b.Time));
            var sums = new List<double>(Sparkline.Count);
            var last = long.MinValue;
            foreach (var (t, v) in Sparkline)
            {
                if (sums.Count > 0 && t == last) sums[^1] += v;
                else sums.Add(v);
                last = t;
            }

            return sums;
        }
    }
}
