using System.Text.Json;

namespace Apm.Alerts;

/// <summary>
/// How alert transitions are stored in InfluxDB: one point per transition in <see cref="Measurement"/>, one series per
/// alert (the <see cref="AlertIdTag"/> tag), the point's time being the transition time. The aggregator writes it; the
/// API and the dashboard read the latest point of each series. Documented in docs/api.md.
/// </summary>
public static class AlertSchema
{
    /// <summary>The measurement.</summary>
    public const string Measurement = "apm.alert";

    /// <summary>Tag: the JVM id.</summary>
    public const string JvmIdTag = "jvm_id";

    /// <summary>Tag: the JVM's host.</summary>
    public const string HostTag = "host";

    /// <summary>Tag: the rule id.</summary>
    public const string RuleTag = "rule";

    /// <summary>Tag: the alert id (<c>jvmId|ruleId|startedAt</c>).</summary>
    public const string AlertIdTag = "alert_id";

    /// <summary>String field: pending, firing, resolved or withdrawn (a pending alert that cleared before firing).</summary>
    public const string StateField = "state";

    /// <summary>String field: the rule's summary.</summary>
    public const string SummaryField = "summary";

    /// <summary>String field: the evidence as a JSON object of strings.</summary>
    public const string EvidenceField = "evidence";

    /// <summary>String field: the rule's suggested fixes as a JSON array of strings, in order of preference (may be absent or empty).</summary>
    public const string SuggestedFixesField = "suggested_fixes";

    /// <summary>Integer fields: Unix milliseconds, 0 when not (yet) known (for a withdrawn alert, resolved_at is when it was withdrawn).</summary>
    public const string StartedAtField = "started_at";

    /// <inheritdoc cref="StartedAtField"/>
    public const string FiredAtField = "fired_at";

    /// <inheritdoc cref="StartedAtField"/>
    public const string ResolvedAtField = "resolved_at";

    /// <summary>String field: the JVM's main class (from the JVM, untrusted).</summary>
    public const string MainClassField = "main_class";

    /// <summary>The suggested fixes as the JSON array stored in <see cref="SuggestedFixesField"/>.</summary>
    public static string FixesJson(IReadOnlyList<string> fixes)
    {
        ArgumentNullException.ThrowIfNull(fixes);
        using var stream = new MemoryStream();
        using (var writer = new Utf8JsonWriter(stream))
        {
            writer.WriteStartArray();
            foreach (var fix in fixes) writer.WriteStringValue(fix);
            writer.WriteEndArray();
        }

        return System.Text.Encoding.UTF8.GetString(stream.ToArray());
    }

    /// <summary>
    /// Reads the <see cref="SuggestedFixesField"/> JSON array back (string items; others skipped). Missing or broken text
    /// gives an empty list: the fixes are advice for people, so they never stop a listing or a restore.
    /// </summary>
    public static IReadOnlyList<string> ParseFixes(string? json)
    {
        if (string.IsNullOrEmpty(json)) return [];
        try
        {
            using var doc = JsonDocument.Parse(json);
            if (doc.RootElement.ValueKind != JsonValueKind.Array) return [];
            return doc.RootElement.EnumerateArray().Where(e => e.ValueKind == JsonValueKind.String).Select(e => e.GetString() ?? string.Empty).ToList();
        }
        catch (JsonException)
        {
            return [];
        }
    }

    /// <summary>
    /// Reads the <see cref="EvidenceField"/> JSON object back (string values; other values as their JSON text). Broken
    /// text is kept whole under the key <c>raw</c>: evidence is for people, so it never stops a listing or a restore.
    /// </summary>
    public static Dictionary<string, string> ParseEvidence(string? json)
    {
        var evidence = new Dictionary<string, string>(StringComparer.Ordinal);
        if (string.IsNullOrEmpty(json)) return evidence;
        try
        {
            using var doc = JsonDocument.Parse(json);
            if (doc.RootElement.ValueKind != JsonValueKind.Object) return evidence;
            foreach (var p in doc.RootElement.EnumerateObject())
            {
                evidence[p.Name] = p.Value.ValueKind == JsonValueKind.String ? p.Value.GetString() ?? string.Empty : p.Value.GetRawText();
            }
        }
        catch (JsonException)
        {
            evidence["raw"] = json;
        }

        return evidence;
    }
}
