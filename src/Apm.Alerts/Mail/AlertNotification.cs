namespace Apm.Alerts.Mail;

/// <summary>What an alert e-mail says: one state change (firing or resolved) of one alert.</summary>
/// <param name="AlertId">Stable alert id (the same for the firing and the resolved mail).</param>
/// <param name="JvmId">JVM id used in dashboard URLs.</param>
/// <param name="JvmDisplayName">Human name of the JVM (main class, host); comes from the JVM, so untrusted.</param>
/// <param name="Rule">Rule id, e.g. <c>FinalizerBacklog</c>.</param>
/// <param name="State"><see cref="Firing"/> or <see cref="Resolved"/>.</param>
/// <param name="FiredAt">When the alert fired.</param>
/// <param name="ResolvedAt">When it resolved; null while firing.</param>
/// <param name="Summary">One-sentence explanation.</param>
/// <param name="Evidence">Numbers over the rule's window, as label/value rows.</param>
/// <param name="TopClasses">Class names that dominate the evidence (untrusted, from the JVM).</param>
public sealed record AlertNotification(
    string AlertId,
    string JvmId,
    string JvmDisplayName,
    string Rule,
    string State,
    DateTimeOffset FiredAt,
    DateTimeOffset? ResolvedAt,
    string Summary,
    IReadOnlyList<(string Label, string Value)> Evidence,
    IReadOnlyList<string> TopClasses)
{
    /// <summary>What to do, in order of preference (the rule's suggested fixes); may be empty.</summary>
    public IReadOnlyList<string> SuggestedFixes { get; init; } = [];

    /// <summary>State of an alert that is active.</summary>
    public const string Firing = "firing";

    /// <summary>State of an alert whose condition has cleared.</summary>
    public const string Resolved = "resolved";
}
