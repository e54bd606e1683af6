using System.Globalization;
using Apm.Alerts;
using Apm.Alerts.Rules;
using Apm.Influx;

namespace Apm.Aggregator.Alerting;

/// <summary>
/// Reads the alerts whose latest stored state is firing, so a restarted aggregator puts them back into its tracker:
/// they then resolve (with their original id) when the data clears, instead of staying "firing" forever in the store
/// while a second episode fires and mails again.
/// </summary>
public static class AlertRestore
{
    /// <summary>Firing alerts whose last transition lies within <paramref name="lookback"/>; one query.</summary>
    public static async Task<IReadOnlyList<AlertEvent>> LoadFiringAsync(InfluxQueryClient influx, TimeSpan lookback, CancellationToken ct)
    {
        ArgumentNullException.ThrowIfNull(influx);
        var query = string.Create(CultureInfo.InvariantCulture,
            $"SELECT * FROM {InfluxQl.QuoteIdentifier(AlertSchema.Measurement)} WHERE time > now() - {(long)lookback.TotalSeconds}s " +
            $"GROUP BY {InfluxQl.QuoteIdentifier(AlertSchema.AlertIdTag)} ORDER BY time DESC LIMIT 1");
        var result = await influx.QueryAsync(query, ct).ConfigureAwait(false);
        var list = new List<AlertEvent>();
        foreach (var s in result.Series)
        {
            if (s.Values.Count == 0 || s.GetString(0, AlertSchema.StateField) != "firing") continue;
            var id = s.Tags.GetValueOrDefault(AlertSchema.AlertIdTag);
            var jvm = s.GetString(0, AlertSchema.JvmIdTag);
            var rule = s.GetString(0, AlertSchema.RuleTag);
            if (string.IsNullOrEmpty(id) || string.IsNullOrEmpty(jvm) || string.IsNullOrEmpty(rule)) continue;
            var started = DateTimeOffset.FromUnixTimeMilliseconds(s.GetInt64(0, AlertSchema.StartedAtField) ?? 0);
            var fired = s.GetInt64(0, AlertSchema.FiredAtField) is long f and > 0 ? DateTimeOffset.FromUnixTimeMilliseconds(f) : started;
            list.Add(new AlertEvent(id, jvm, rule, AlertState.Firing, started, fired, null,
                s.GetString(0, AlertSchema.SummaryField) ?? string.Empty, AlertSchema.ParseEvidence(s.GetString(0, AlertSchema.EvidenceField)))
            {
                SuggestedFixes = AlertSchema.ParseFixes(s.GetString(0, AlertSchema.SuggestedFixesField)),
            });
        }

        return list;
    }
}
