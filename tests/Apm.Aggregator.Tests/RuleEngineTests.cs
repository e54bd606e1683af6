using Apm.Aggregator.Alerting;
using Apm.Alerts.Rules;
using Apm.Protocol.V1;

namespace Apm.Aggregator.Tests;

/// <summary>The per-JVM windows, the evaluation schedule and the lifecycle wiring of the aggregator's rule engine.</summary>
public sealed class RuleEngineTests
{
    private static readonly DateTimeOffset T0 = new(2026, 3, 1, 8, 0, 0, TimeSpan.Zero);

    private static readonly AlertingOptions Fast = new()
    {
        EvaluationInterval = TimeSpan.FromSeconds(10),
        Lifecycle = new AlertTrackerOptions { ConsecutiveEvaluations = 2, ClearFor = TimeSpan.FromSeconds(5) },
    };

    private static RuleSet Backlog(TimeSpan window) =>
        new(new FinalizerBacklogOptions { Window = window, MinSamples = 6, MinRise = 100 }, disabled: new HashSet<string> { RuleIds.GcOverhead, RuleIds.OldGenGrowth, RuleIds.TimerRetainedFinalizable });

    private static JvmIdentity Jvm(string id = "h:1:1") => new() { JvmId = id, Host = "h", Pid = 1, MainClass = "com.acme.Main" };

    private static long Nanos(DateTimeOffset t) => t.ToUnixTimeMilliseconds() * 1_000_000;

    private static CollectorMessage Finalizer(DateTimeOffset t, long pending, string id = "h:1:1") => new()
    {
        Finalizer = new FinalizerSample
        {
            Jvm = new JvmIdentity { JvmId = id, Host = "h" },
            TimeUnixNanos = Nanos(t),
            PendingTotal = pending,
            Classes = { new FinalizerClassCount { ClassName = "com.acme.Slow", Count = pending } },
        },
    };

    private static CollectorMessage Sample(DateTimeOffset t, long oldUsed, long youngGcs, double uptime, string id = "h:1:1") => new()
    {
        Sample = new JvmSample
        {
            Jvm = Jvm(id),
            TimeUnixNanos = Nanos(t),
            UptimeSeconds = uptime,
            Spaces = { new MemorySpace { Pool = "old", Type = "heap", UsedBytes = oldUsed, MaxBytes = 1 << 30 } },
            Collectors =
            {
                new Collector { Name = "Copy", Index = 0, Invocations = youngGcs, TimeSeconds = youngGcs * 0.001 },
                new Collector { Name = "MSC", Index = 1, Invocations = 0 },
            },
        },
    };

    [Fact]
    public void A_rising_backlog_goes_pending_then_firing_once_and_names_the_class()
    {
        var engine = new RuleEngine(Backlog(TimeSpan.FromSeconds(60)), Fast);
        engine.Observe(Sample(T0, 1, 1, 100)); // the identity with the main class comes from samples
        var events = new List<AlertEvent>();
        for (var i = 0; i < 30; i++) events.AddRange(engine.Observe(Finalizer(T0.AddSeconds(i * 2), 1000L * i)));

        Assert.Equal([AlertState.Pending, AlertState.Firing], events.Select(e => e.State));
        Assert.All(events, e => Assert.Equal(RuleIds.FinalizerBacklog, e.Rule));
        Assert.Contains("com.acme.Slow", events[1].Evidence["topClasses"], StringComparison.Ordinal);
        Assert.Equal("com.acme.Main", engine.Identity("h:1:1")!.MainClass);
    }

    [Fact]
    public void Samples_are_evaluated_at_most_once_per_interval_of_sample_time_but_every_finalizer_reading_is()
    {
        var engine = new RuleEngine(Backlog(TimeSpan.FromSeconds(60)), Fast);
        for (var i = 0; i < 100; i++) engine.Observe(Sample(T0.AddSeconds(i), 1, 1, 100 + i));
        Assert.Equal(10, engine.Evaluations); // seconds 0, 10, ..., 90

        for (var i = 0; i < 5; i++) engine.Observe(Finalizer(T0.AddSeconds(100 + i), 0));
        Assert.Equal(15, engine.Evaluations);
    }

    [Fact]
    public void A_JVM_that_exits_resolves_its_firing_alert_and_its_window_is_dropped()
    {
        var engine = new RuleEngine(Backlog(TimeSpan.FromSeconds(60)), Fast);
        for (var i = 0; i < 30; i++) engine.Observe(Finalizer(T0.AddSeconds(i * 2), 1000L * i));
        Assert.Equal(1, engine.TrackedJvms);
        var gone = new CollectorMessage
        {
            Status = new JvmStatus { Jvm = Jvm(), State = JvmStatus.Types.State.Gone, TimeUnixNanos = Nanos(T0.AddSeconds(70)) },
        };

        var events = engine.Observe(gone);

        var resolved = Assert.Single(events);
        Assert.Equal(AlertState.Resolved, resolved.State);
        Assert.Equal(T0.AddSeconds(70), resolved.ResolvedAt);
        Assert.Equal(0, engine.TrackedJvms);
        Assert.Empty(engine.Tracker.Active());
    }

    [Fact]
    public void A_backlog_that_drains_resolves_after_the_clear_period()
    {
        var engine = new RuleEngine(Backlog(TimeSpan.FromSeconds(20)), Fast);
        var events = new List<AlertEvent>();
        var t = T0;
        for (var i = 0; i < 20; i++, t = t.AddSeconds(1)) events.AddRange(engine.Observe(Finalizer(t, 1000L * i)));
        Assert.Contains(events, e => e.State == AlertState.Firing);
        for (var i = 0; i < 30; i++, t = t.AddSeconds(1)) events.AddRange(engine.Observe(Finalizer(t, Math.Max(0, 19_000 - (2000L * i)))));

        var resolved = Assert.Single(events, e => e.State == AlertState.Resolved);
        Assert.Equal(events.Single(e => e.State == AlertState.Firing).Id, resolved.Id);
    }

    [Fact]
    public void Heap_samples_are_thinned_so_memory_stays_bounded_for_a_long_window()
    {
        // A 1 h window at one sample a second would keep 3,600 samples per JVM; thinning keeps about 720 plus the
        // samples right after collections.
        var rules = new RuleSet(oldGenGrowth: new OldGenGrowthOptions { Window = TimeSpan.FromHours(1) });
        var engine = new RuleEngine(rules, new AlertingOptions { EvaluationInterval = TimeSpan.FromMinutes(1) });
        var gcs = 0L;
        for (var i = 0; i < 7200; i++)
        {
            if (i % 100 == 0) gcs++;
            engine.Observe(Sample(T0.AddSeconds(i), 1000 + i, gcs, 10 + i));
        }

        var kept = engine.Kept("h:1:1").Heap;
        Assert.InRange(kept, 700, 800);
    }

    [Fact]
    public void Readings_out_of_order_between_kinds_do_not_stop_evaluation()
    {
        var engine = new RuleEngine(Backlog(TimeSpan.FromSeconds(60)), Fast);
        engine.Observe(Sample(T0.AddSeconds(10), 1, 1, 100));
        // A finalizer reading stamped before the last sample: evaluated at the later time, no exception.
        engine.Observe(Finalizer(T0.AddSeconds(9), 5));
        Assert.Equal(2, engine.Evaluations);
        Assert.Equal(0, engine.RuleFailures);
    }

    [Fact]
    public void Revoked_partitions_take_their_JVMs_rule_state_along_and_leave_the_others()
    {
        var engine = new RuleEngine(Backlog(TimeSpan.FromSeconds(60)), Fast);
        for (var i = 0; i < 30; i++)
        {
            engine.Observe(Finalizer(T0.AddSeconds(i * 2), 1000L * i, "h:1:1"), partition: 1);
            engine.Observe(Finalizer(T0.AddSeconds(i * 2), 1000L * i, "h:2:2"), partition: 2);
        }

        Assert.Equal(2, engine.Tracker.Active().Count);

        Assert.Equal(1, engine.ForgetPartitions(new HashSet<int> { 1, 5 }));

        Assert.Equal((0, 0, 0), engine.Kept("h:1:1"));
        Assert.NotEqual(0, engine.Kept("h:2:2").Finalizer);
        Assert.Equal("h:2:2", Assert.Single(engine.Tracker.Active()).JvmId);
        Assert.Equal(0, engine.ForgetPartitions(new HashSet<int> { 1 }));
    }

    [Fact]
    public void Reusing_unchanged_results_gives_exactly_the_events_of_evaluating_every_time()
    {
        // Random fleets: heap samples every second, finalizer readings every 15 s and histograms every minute, with
        // backlogs and timer leaks that start, stop and drain, readings that go missing, and a JVM that exits.
        var lifecycle = new AlertTrackerOptions { ConsecutiveEvaluations = 2, ClearFor = TimeSpan.FromSeconds(30), CoolDown = TimeSpan.FromMinutes(1) };
        var totalEvents = 0;
        long totalReused = 0;
        for (var seed = 1; seed <= 4; seed++)
        {
            var rules = new RuleSet(
                new FinalizerBacklogOptions { Window = TimeSpan.FromMinutes(5) },
                new TimerRetainedFinalizableOptions { Window = TimeSpan.FromMinutes(8) },
                new OldGenGrowthOptions { Window = TimeSpan.FromMinutes(10) },
                new GcOverheadOptions { Window = TimeSpan.FromMinutes(5) });
            var reusing = new RuleEngine(rules, new AlertingOptions { Lifecycle = lifecycle });
            var fresh = new RuleEngine(rules, new AlertingOptions { Lifecycle = lifecycle, ReuseResults = false });
            var random = new Random(seed);
            var expected = new List<string>();
            var actual = new List<string>();
            foreach (var message in RandomFleet(random, jvms: 4, TimeSpan.FromMinutes(50)))
            {
                expected.AddRange(fresh.Observe(message).Select(Describe));
                actual.AddRange(reusing.Observe(message).Select(Describe));
            }

            Assert.Equal(expected, actual);
            Assert.Equal(0, fresh.ReusedResults);
            totalEvents += expected.Count;
            totalReused += reusing.ReusedResults;
            Assert.True(reusing.RuleRuns < fresh.RuleRuns, $"seed {seed}: {reusing.RuleRuns} runs with reuse, {fresh.RuleRuns} without");
        }

        // The comparison means something only if alerts came and went.
        Assert.True(totalEvents >= 8, $"only {totalEvents} events in all runs");
        Assert.True(totalReused > 1000, $"only {totalReused} results reused");
    }

    private static string Describe(AlertEvent e) =>
        $"{e.Id} {e.State} {e.FiredAt:O} {e.ResolvedAt:O} {e.Summary} | {string.Join("; ", e.Evidence.OrderBy(kv => kv.Key, StringComparer.Ordinal).Select(kv => kv.Key + "=" + kv.Value))}";

    private static IEnumerable<CollectorMessage> RandomFleet(Random random, int jvms, TimeSpan length)
    {
        var backlog = new long[jvms];
        var statements = new long[jvms];
        var growing = new bool[jvms];
        var leaking = new bool[jvms];
        var oldUsed = new long[jvms];
        var gone = -1;
        for (var s = 0; s < length.TotalSeconds; s++)
        {
            var t = T0.AddSeconds(s);
            for (var j = 0; j < jvms; j++)
            {
                if (j == gone) continue;
                var id = $"h:{j}:1";
                if (s % 300 == 0)
                {
                    growing[j] = random.Next(3) == 0;
                    leaking[j] = random.Next(3) == 0;
                }

                oldUsed[j] = Math.Max(0, oldUsed[j] + random.Next(-2_000, 3_000) + (leaking[j] ? 20_000 : 0));
                yield return Sample(t.AddMilliseconds(j), 50_000_000 + oldUsed[j], s / 4, 100 + s, id);
                if (s % 15 == 0 && random.Next(10) > 0)
                {
                    backlog[j] = growing[j] ? backlog[j] + random.Next(50, 150) : Math.Max(0, backlog[j] - random.Next(0, 400));
                    yield return Finalizer(t.AddMilliseconds(j), backlog[j], id);
                }

                if (s % 60 == 0 && random.Next(8) > 0)
                {
                    statements[j] += leaking[j] ? random.Next(400, 600) : 0;
                    yield return Histogram(t.AddMilliseconds(j), 2_000 + statements[j], statements[j], id);
                }
            }

            if (s == (int)length.TotalSeconds * 3 / 4)
            {
                gone = random.Next(jvms);
                yield return new CollectorMessage
                {
                    Status = new JvmStatus { Jvm = Jvm($"h:{gone}:1"), TimeUnixNanos = Nanos(t), State = JvmStatus.Types.State.Gone },
                };
            }
        }
    }

    private static CollectorMessage Histogram(DateTimeOffset t, long finalizers, long statements, string id) => new()
    {
        Histogram = new ClassHistogramSample
        {
            Jvm = new JvmIdentity { JvmId = id, Host = "h" },
            TimeUnixNanos = Nanos(t),
            FinalizerRegistered = finalizers,
            Rows =
            {
                new HistogramRow { ClassName = "java.lang.ref.Finalizer", Instances = finalizers, Bytes = finalizers * 40 },
                new HistogramRow { ClassName = "com.acme.db.Stmt", Instances = 100 + statements, Bytes = (100 + statements) * 64 },
                new HistogramRow { ClassName = "com.acme.db.Stmt$CancelTask", Instances = 3 + statements, Bytes = (3 + statements) * 32 },
                new HistogramRow { ClassName = "java.lang.String", Instances = 50_000, Bytes = 1_200_000 },
            },
        },
    };

    [Fact]
    public void The_collectors_kept_because_marks_reach_the_timer_rule()
    {
        var rules = new RuleSet(timerRetained: new TimerRetainedFinalizableOptions { Window = TimeSpan.FromMinutes(10), MinGrowth = 100 },
            disabled: new HashSet<string> { RuleIds.GcOverhead, RuleIds.OldGenGrowth, RuleIds.FinalizerBacklog });
        var engine = new RuleEngine(rules, new AlertingOptions { Lifecycle = new AlertTrackerOptions { ConsecutiveEvaluations = 1 } });
        long[] finalizer = [1_000, 1_500, 2_300, 2_700];
        var events = new List<AlertEvent>();
        for (var i = 0; i < finalizer.Length; i++)
        {
            events.AddRange(engine.Observe(new CollectorMessage
            {
                Histogram = new ClassHistogramSample
                {
                    Jvm = Jvm(),
                    TimeUnixNanos = Nanos(T0.AddMinutes(i)),
                    FinalizerRegistered = finalizer[i],
                    Rows =
                    {
                        new HistogramRow { ClassName = "java.lang.ref.Finalizer", Instances = finalizer[i], KeptBecause = "finalizer" },
                        new HistogramRow { ClassName = "java.lang.Object", Instances = finalizer[i] - 100, KeptBecause = "finalizer-step,top-instances" },
                        new HistogramRow { ClassName = "com.acme.Stmt", Instances = finalizer[i] - 200, KeptBecause = "finalizer-step" },
                        // Only the collector's class hierarchy knows this is a TimerTask: its name says nothing.
                        new HistogramRow { ClassName = "com.acme.Canceller", Instances = finalizer[i] - 300, KeptBecause = "timer-task,finalizer-step" },
                    },
                },
            }));
        }

        var firing = Assert.Single(events, e => e.State == AlertState.Firing);
        Assert.Equal("com.acme.Stmt", firing.Evidence["finalizableClass"]);
        Assert.Equal("com.acme.Canceller", firing.Evidence["timerTaskClass"]);
        Assert.NotEmpty(firing.SuggestedFixes);
    }
}
