using System.Globalization;
using System.Text;
using System.Text.Json;
using Apm.Alerts;
using Apm.Alerts.Mail;
using Apm.Alerts.Rules;
using Apm.Influx;
using Apm.Protocol.V1;

namespace Apm.Aggregator.Alerting;

/// <summary>The forms an alert transition leaves the aggregator in: an InfluxDB point, a Kafka message, an e-mail.</summary>
public static class AlertOutputs
{
    /// <summary>When the transition happened: started, fired or resolved (withdrawn) time by state.</summary>
    public static DateTimeOffset TransitionTime(AlertEvent e)
    {
        ArgumentNullException.ThrowIfNull(e);
        return e.State switch
        {
            AlertState.Firing => e.FiredAt ?? e.StartedAt,
            AlertState.Resolved => e.ResolvedAt ?? e.FiredAt ?? e.StartedAt,
            AlertState.Withdrawn => e.ResolvedAt ?? e.StartedAt,
            _ => e.StartedAt,
        };
    }

    /// <summary>The state as the API, the topic and e-mails spell it.</summary>
    public static string StateName(AlertState state) => state switch
    {
        AlertState.Pending => "pending",
        AlertState.Firing => AlertNotification.Firing,
        AlertState.Withdrawn => "withdrawn",
        _ => AlertNotification.Resolved,
    };

    /// <summary>Appends the transition as one point of <see cref="AlertSchema.Measurement"/>; returns 1.</summary>
    public static int AppendPoint(LineProtocolBuilder lines, AlertEvent e, JvmIdentity? jvm)
    {
        ArgumentNullException.ThrowIfNull(lines);
        ArgumentNullException.ThrowIfNull(e);
        lines.Measurement(AlertSchema.Measurement)
            .Tag(AlertSchema.AlertIdTag, e.Id)
            .Tag(AlertSchema.HostTag, jvm?.Host)
            .Tag(AlertSchema.JvmIdTag, e.JvmId)
            .Tag(AlertSchema.RuleTag, e.Rule)
            .Field(AlertSchema.StateField, StateName(e.State))
            .Field(AlertSchema.SummaryField, e.Summary)
            .Field(AlertSchema.EvidenceField, EvidenceJson(e.Evidence))
            .Field(AlertSchema.SuggestedFixesField, AlertSchema.FixesJson(e.SuggestedFixes))
            .Field(AlertSchema.StartedAtField, e.StartedAt.ToUnixTimeMilliseconds())
            .Field(AlertSchema.FiredAtField, e.FiredAt?.ToUnixTimeMilliseconds() ?? 0)
            .Field(AlertSchema.ResolvedAtField, e.ResolvedAt?.ToUnixTimeMilliseconds() ?? 0)
            .Field(AlertSchema.MainClassField, jvm?.MainClass ?? string.Empty)
            .Timestamp(TransitionTime(e));
        return 1;
    }

    /// <summary>The message for the alerts topic.</summary>
    public static AlertTransition ToTransition(AlertEvent e, JvmIdentity? jvm)
    {
        ArgumentNullException.ThrowIfNull(e);
        var t = new AlertTransition
        {
            AlertId = e.Id,
            Jvm = jvm ?? new JvmIdentity { JvmId = e.JvmId },
            Rule = e.Rule,
            State = StateName(e.State),
            TimeUnixNanos = TransitionTime(e).ToUnixTimeMilliseconds() * 1_000_000,
            StartedUnixMs = e.StartedAt.ToUnixTimeMilliseconds(),
            FiredUnixMs = e.FiredAt?.ToUnixTimeMilliseconds() ?? 0,
            ResolvedUnixMs = e.ResolvedAt?.ToUnixTimeMilliseconds() ?? 0,
            Summary = e.Summary,
        };
        foreach (var (k, v) in e.Evidence) t.Evidence[k] = v;
        t.SuggestedFixes.Add(e.SuggestedFixes);
        return t;
    }

    /// <summary>The e-mail for a firing or resolved transition; null for pending and withdrawn (nobody is told about those).</summary>
    public static AlertNotification? ToNotification(AlertEvent e, JvmIdentity? jvm)
    {
        ArgumentNullException.ThrowIfNull(e);
        if (e.State is AlertState.Pending or AlertState.Withdrawn) return null;
        var name = jvm is null || string.IsNullOrEmpty(jvm.MainClass)
            ? e.JvmId
            : string.Create(CultureInfo.InvariantCulture, $"{jvm.MainClass} (pid {jvm.Pid} on {jvm.Host})");
        var evidence = e.Evidence
            .OrderBy(kv => kv.Key, StringComparer.Ordinal)
            .Select(kv => (kv.Key, kv.Value))
            .ToList();
        return new AlertNotification(
            e.Id,
            e.JvmId,
            name,
            e.Rule,
            StateName(e.State),
            e.FiredAt ?? e.StartedAt,
            e.ResolvedAt,
            e.Summary,
            evidence,
            TopClasses(e.Evidence))
        {
            SuggestedFixes = e.SuggestedFixes,
        };
    }

    /// <summary>The classes an alert is about: the timer pattern's two classes, or the backlog's top classes.</summary>
    public static IReadOnlyList<string> TopClasses(IReadOnlyDictionary<string, string> evidence)
    {
        ArgumentNullException.ThrowIfNull(evidence);
        var classes = new List<string>();
        if (evidence.TryGetValue("finalizableClass", out var f)) classes.Add(f);
        if (evidence.TryGetValue("timerTaskClass", out var task)) classes.Add(task);
        if (evidence.TryGetValue("topClasses", out var top))
        {
            // "a.B (120), c.D (7)": the count is the last " (...)" of each item.
            foreach (var item in top.Split(", ", StringSplitOptions.RemoveEmptyEntries))
            {
                var cut = item.LastIndexOf(" (", StringComparison.Ordinal);
                classes.Add(cut > 0 ? item[..cut] : item);
            }
        }

        return classes;
    }

    /// <summary>The evidence as a JSON object of strings.</summary>
    public static string EvidenceJson(IReadOnlyDictionary<string, string> evidence)
    {
        ArgumentNullException.ThrowIfNull(evidence);
        using var stream = new MemoryStream();
        using (var writer = new Utf8JsonWriter(stream))
        {
            writer.WriteStartObject();
            foreach (var (k, v) in evidence.OrderBy(kv => kv.Key, StringComparer.Ordinal)) writer.WriteString(k, v);
            writer.WriteEndObject();
        }

        return Encoding.UTF8.GetString(stream.ToArray());
    }
}
