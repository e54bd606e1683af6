namespace Apm.Alerts.Rules;

/// <summary>Where an alert is in its lifecycle.</summary>
public enum AlertState
{
    /// <summary>Breached, but not yet for long enough to fire.</summary>
    Pending,

    /// <summary>Breached for <see cref="AlertTrackerOptions.For"/> or <see cref="AlertTrackerOptions.ConsecutiveEvaluations"/> evaluations.</summary>
    Firing,

    /// <summary>Was firing, then not breached for <see cref="AlertTrackerOptions.ClearFor"/>.</summary>
    Resolved,

    /// <summary>Was pending and cleared (or its JVM left) before it fired: nobody was told, and it is no longer pending.</summary>
    Withdrawn,
}

/// <summary>A lifecycle transition of one alert (one episode of one rule on one JVM).</summary>
/// <param name="Id">Stable for the whole episode: <c>jvmId|ruleId|startedAt</c> (UTC, ISO 8601), so pending, firing and resolved events share it.</param>
/// <param name="JvmId">The JVM.</param>
/// <param name="Rule">The rule id.</param>
/// <param name="State">The state entered.</param>
/// <param name="StartedAt">First breach of the episode.</param>
/// <param name="FiredAt">When the alert fired; null while pending.</param>
/// <param name="ResolvedAt">When the alert resolved (for <see cref="AlertState.Withdrawn"/>: when it was withdrawn); null until then.</param>
/// <param name="Summary">The rule's summary at the transition (for resolved: the last breached summary).</param>
/// <param name="Evidence">The rule's evidence at the transition (for resolved: the last breached evidence).</param>
public sealed record AlertEvent(
    string Id,
    string JvmId,
    string Rule,
    AlertState State,
    DateTimeOffset StartedAt,
    DateTimeOffset? FiredAt,
    DateTimeOffset? ResolvedAt,
    string Summary,
    IReadOnlyDictionary<string, string> Evidence)
{
    /// <summary>The rule's suggested fixes at the transition (for resolved: the last breached ones), in order of preference; may be empty.</summary>
    public IReadOnlyList<string> SuggestedFixes { get; init; } = [];
}

/// <summary>Lifecycle timing, bound from <c>Apm:Alerts:Lifecycle:*</c>.</summary>
public sealed class AlertTrackerOptions
{
    /// <summary>Fire once breached continuously for this long (whichever of this and <see cref="ConsecutiveEvaluations"/> comes first).</summary>
    public TimeSpan For { get; set; } = TimeSpan.FromMinutes(5);

    /// <summary>Fire after this many consecutive breached evaluations.</summary>
    public int ConsecutiveEvaluations { get; set; } = 3;

    /// <summary>Resolve once not breached continuously for this long.</summary>
    public TimeSpan ClearFor { get; set; } = TimeSpan.FromMinutes(10);

    /// <summary>After resolving, breaches are ignored for this long so a flapping rule does not mail again and again.</summary>
    public TimeSpan CoolDown { get; set; } = TimeSpan.FromMinutes(30);

    internal void Validate()
    {
        if (For < TimeSpan.Zero || ClearFor < TimeSpan.Zero || CoolDown < TimeSpan.Zero)
        {
            throw new ArgumentOutOfRangeException(nameof(For), "For, ClearFor and CoolDown must not be negative.");
        }

        Checks.AtLeast(ConsecutiveEvaluations, 1, nameof(ConsecutiveEvaluations));
    }
}

/// <summary>
/// Turns rule results into alert transitions per (jvmId, ruleId): pending → firing → resolved, one
/// event per transition (de-duplicated), with a cool-down before the same rule can fire again on
/// the same JVM. Time is passed in. Thread-safe; memory is one small entry per (JVM, rule) seen.
/// </summary>
public sealed class AlertTracker
{
    private readonly AlertTrackerOptions _options;
    private readonly Dictionary<(string Jvm, string Rule), Entry> _entries = [];
    private readonly Lock _lock = new();

    /// <summary>Creates a tracker; throws <see cref="ArgumentOutOfRangeException"/> on invalid options.</summary>
    public AlertTracker(AlertTrackerOptions? options = null)
    {
        _options = options ?? new AlertTrackerOptions();
        _options.Validate();
    }

    /// <summary>
    /// Records one evaluation and returns the transitions it caused (usually none; pending and firing
    /// together when the first breach already satisfies the firing condition). Throws when time goes
    /// backwards for the key.
    /// </summary>
    public IReadOnlyList<AlertEvent> Observe(string jvmId, string ruleId, DateTimeOffset now, RuleResult result)
    {
        ArgumentException.ThrowIfNullOrEmpty(jvmId);
        ArgumentException.ThrowIfNullOrEmpty(ruleId);
        ArgumentNullException.ThrowIfNull(result);
        var events = new List<AlertEvent>(2);
        lock (_lock)
        {
            var key = (jvmId, ruleId);
            if (!_entries.TryGetValue(key, out var e))
            {
                e = new Entry();
                _entries[key] = e;
            }

            if (e.LastSeen is { } last && now < last)
            {
                throw new ArgumentException($"Evaluation time {now:O} is before the previous one ({last:O}) for {jvmId}/{ruleId}.", nameof(now));
            }

            e.LastSeen = now;
            // Too little data is no news: neither a breach nor a clear (a firing alert stays firing until the data says otherwise).
            if (result.InsufficientData)
            {
                return events;
            }

            if (result.Breached)
            {
                OnBreached(e, jvmId, ruleId, now, result, events);
            }
            else
            {
                OnClear(e, jvmId, ruleId, now, events);
            }
        }

        return events;
    }

    /// <summary>
    /// The JVM is gone: its firing alerts resolve now and its pending ones are withdrawn (one event each, with
    /// <paramref name="reason"/> before the summary) and
    /// everything the tracker kept for it is dropped, so memory does not grow with JVMs that came and went.
    /// </summary>
    public IReadOnlyList<AlertEvent> Retire(string jvmId, DateTimeOffset now, string reason)
    {
        ArgumentException.ThrowIfNullOrEmpty(jvmId);
        ArgumentNullException.ThrowIfNull(reason);
        var events = new List<AlertEvent>();
        lock (_lock)
        {
            foreach (var key in _entries.Keys.Where(k => k.Jvm == jvmId).ToList())
            {
                var e = _entries[key];
                if (e.State == AlertState.Firing)
                {
                    e.State = AlertState.Resolved;
                    events.Add(Snapshot(e, key.Jvm, key.Rule) with { ResolvedAt = now, Summary = reason + " " + e.Summary });
                }
                else if (e.State == AlertState.Pending)
                {
                    e.State = AlertState.Withdrawn;
                    events.Add(Snapshot(e, key.Jvm, key.Rule) with { ResolvedAt = now, Summary = reason + " " + e.Summary });
                }

                _entries.Remove(key);
            }
        }

        return events;
    }

    /// <summary>Drops everything kept for <paramref name="jvmId"/> without emitting events (its partition moved to another aggregator).</summary>
    public void Forget(string jvmId)
    {
        lock (_lock)
        {
            foreach (var key in _entries.Keys.Where(k => k.Jvm == jvmId).ToList()) _entries.Remove(key);
        }
    }

    /// <summary>
    /// Puts back a firing or pending alert known from storage (after a restart or a rebalance), so that a firing one
    /// resolves or stays quiet instead of firing again, and a pending one fires or is withdrawn under its id instead of
    /// staying pending in the store. A restored pending alert counts as one breached evaluation. Ignored when the tracker
    /// already holds state for that JVM and rule, or when the alert is in another state.
    /// </summary>
    public void Restore(AlertEvent active)
    {
        ArgumentNullException.ThrowIfNull(active);
        if (active.State is not (AlertState.Firing or AlertState.Pending)) return;
        lock (_lock)
        {
            var key = (active.JvmId, active.Rule);
            if (_entries.ContainsKey(key)) return;
            _entries[key] = new Entry
            {
                State = active.State,
                StartedAt = active.StartedAt,
                FiredAt = active.State == AlertState.Firing ? active.FiredAt ?? active.StartedAt : null,
                Consecutive = active.State == AlertState.Firing ? _options.ConsecutiveEvaluations : 1,
                Summary = active.Summary,
                Evidence = active.Evidence,
                SuggestedFixes = active.SuggestedFixes,
            };
        }
    }

    /// <summary>(JVM, rule) pairs the tracker holds state for (pending, firing, cooling down).</summary>
    public int Count
    {
        get
        {
            lock (_lock)
            {
                return _entries.Count;
            }
        }
    }

    /// <summary>Alerts currently pending or firing, with their latest summary and evidence.</summary>
    public IReadOnlyList<AlertEvent> Active()
    {
        lock (_lock)
        {
            return _entries
                .Where(kv => kv.Value.State is AlertState.Pending or AlertState.Firing)
                .Select(kv => Snapshot(kv.Value, kv.Key.Jvm, kv.Key.Rule))
                .OrderBy(a => a.Id, StringComparer.Ordinal)
                .ToList();
        }
    }

    private void OnBreached(Entry e, string jvm, string rule, DateTimeOffset now, RuleResult result, List<AlertEvent> events)
    {
        e.ClearSince = null;
        if (e.State is null)
        {
            if (e.CoolDownUntil is { } until && now < until)
            {
                return;
            }

            e.State = AlertState.Pending;
            e.StartedAt = now;
            e.FiredAt = null;
            e.Consecutive = 1;
            e.Summary = result.Summary;
            e.Evidence = result.Evidence;
            e.SuggestedFixes = result.SuggestedFixes ?? [];
            events.Add(Snapshot(e, jvm, rule));
        }
        else
        {
            e.Consecutive++;
            e.Summary = result.Summary;
            e.Evidence = result.Evidence;
            e.SuggestedFixes = result.SuggestedFixes ?? [];
        }

        if (e.State == AlertState.Pending
            && (e.Consecutive >= _options.ConsecutiveEvaluations || now - e.StartedAt >= _options.For))
        {
            e.State = AlertState.Firing;
            e.FiredAt = now;
            events.Add(Snapshot(e, jvm, rule));
        }
    }

    private void OnClear(Entry e, string jvm, string rule, DateTimeOffset now, List<AlertEvent> events)
    {
        e.Consecutive = 0;
        switch (e.State)
        {
            case AlertState.Pending:
                // Never fired: nobody was told, but the pending transition was stored and published, so say it is over.
                e.State = AlertState.Withdrawn;
                events.Add(Snapshot(e, jvm, rule) with { ResolvedAt = now });
                e.State = null;
                break;
            case AlertState.Firing:
                e.ClearSince ??= now;
                if (now - e.ClearSince.Value >= _options.ClearFor)
                {
                    e.State = AlertState.Resolved;
                    var resolved = Snapshot(e, jvm, rule) with { ResolvedAt = now };
                    events.Add(resolved);
                    e.State = null;
                    e.ClearSince = null;
                    e.CoolDownUntil = now + _options.CoolDown;
                }

                break;
            default:
                break;
        }
    }

    private static AlertEvent Snapshot(Entry e, string jvm, string rule) =>
        new(
            $"{jvm}|{rule}|{e.StartedAt.UtcDateTime:yyyy-MM-ddTHH:mm:ss.fffZ}",
            jvm,
            rule,
            e.State ?? AlertState.Resolved,
            e.StartedAt,
            e.FiredAt,
            null,
            e.Summary,
            e.Evidence)
        {
            SuggestedFixes = e.SuggestedFixes,
        };

    private sealed class Entry
    {
        public AlertState? State { get; set; }

        public DateTimeOffset StartedAt { get; set; }

        public DateTimeOffset? FiredAt { get; set; }

        public DateTimeOffset? ClearSince { get; set; }

        public DateTimeOffset? CoolDownUntil { get; set; }

        public DateTimeOffset? LastSeen { get; set; }

        public int Consecutive { get; set; }

        public string Summary { get; set; } = "";

        public IReadOnlyDictionary<string, string> Evidence { get; set; } = new Dictionary<string, string>();

        public IReadOnlyList<string> SuggestedFixes { get; set; } = [];
    }
}
