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
        var listTask = jvms.ListJvmsAsync(jvms.Options.JvmLookback, ct);
        var valuesTask = influx.QueryAsync(BuildQuery(), ct);
        var alertsTask = alerts.ListAsync("firing", null, ct);
        await Task.WhenAll(listTask, valuesTask, alertsTask).ConfigureAwait(false);
        var list = await listTask.ConfigureAwait(false);
        var result = await valuesTask.ConfigureAwait(false);
        var firing = (await alertsTask.ConfigureAwait(false)).GroupBy(a => a.JvmId, StringComparer.Ordinal)
            .ToDictionary(g => g.Key, g => (IReadOnlyList<string>)g.Select(a => a.Rule).Distinct(StringComparer.Ordinal).ToList(), StringComparer.Ordinal);

        var statements = result.Results.ToDictionary(r => r.StatementId);
        var columns = definitions.Fleet.Columns;
        var values = new List<Dictionary<string, double>>();
        var maxima = new List<Dictionary<string, double>?>();
        var statement = 0;
        foreach (var c in columns)
        {
            values.Add(Latest(statements.GetValueOrDefault(statement++)));
            maxima.Add(c.Max is null ? null : Latest(statements.GetValueOrDefault(statement++)));
        }

        var spark = definitions.Fleet.Sparkline is null ? [] : Buckets(statements.GetValueOrDefault(statement));
        var rows = new List<FleetRow>(list.Count);
        DateTimeOffset? newest = null;
        foreach (var j in list)
        {
            if (newest is null || j.LastSeen > newest) newest = j.LastSeen;
            var v = new double?[columns.Count];
            var m = new double?[columns.Count];
            for (var i = 0; i < columns.Count; i++)
            {
                v[i] = values[i].TryGetValue(j.Id, out var x) ? x : null;
                m[i] = maxima[i] is { } mx && mx.TryGetValue(j.Id, out var y) ? y : null;
            }

            rows.Add(new FleetRow(j, v, m, firing.GetValueOrDefault(j.Id) ?? [], spark.GetValueOrDefault(j.Id) ?? []));
        }

        return new FleetSnapshot(rows, DateTimeOffset.UtcNow, newest, jvms.Options.StaleAfter);
    }

    private static void AppendLatest(StringBuilder sb, SeriesDefinition s)
    {
        var by = s.SumBy is null ? string.Empty : ", " + InfluxQl.QuoteIdentifier(s.SumBy);
        sb.Append(CultureInfo.InvariantCulture,
            $"SELECT {s.Reduce}(\"value\") AS \"value\" FROM {InfluxQl.QuoteIdentifier(s.Metric)} WHERE time > now() - {(long)s.WindowSpan.TotalSeconds}s{s.WhereClause()} GROUP BY \"jvm_id\"{by};");
    }

    /// <summary>The value per JVM, adding the series that differ by the sumBy tag.</summary>
    private static Dictionary<string, double> Latest(InfluxStatementResult? r)
    {
        var map = new Dictionary<string, double>(StringComparer.Ordinal);
        if (r is null) return map;
        foreach (var s in r.Series)
        {
            if (!s.Tags.TryGetValue("jvm_id", out var id) || s.Values.Count == 0 || s.GetDouble(0, "value") is not { } v) continue;
            map[id] = map.GetValueOrDefault(id) + v;
        }

        return map;
    }

    /// <summary>Per JVM, the sum over the sumBy tag of each time bucket, in time order.</summary>
    private static Dictionary<string, IReadOnlyList<double>> Buckets(InfluxStatementResult? r)
    {
        var sums = new Dictionary<string, SortedDictionary<long, double>>(StringComparer.Ordinal);
        if (r is null) return [];
        foreach (var s in r.Series)
        {
            if (!s.Tags.TryGetValue("jvm_id", out var id)) continue;
            if (!sums.TryGetValue(id, out var b)) sums[id] = b = [];
            for (var row = 0; row < s.Values.Count; row++)
            {
                if (s.GetDouble(row, "value") is { } v && s.GetTime(row) is { } t) b[t] = b.GetValueOrDefault(t) + v;
            }
        }

        return sums.ToDictionary(k => k.Key, k => (IReadOnlyList<double>)k.Value.Values.ToList(), StringComparer.Ordinal);
    }
}
