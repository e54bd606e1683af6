using System.Globalization;
using Apm.Collector;
using Apm.FleetSimulator;
using Apm.Kafka;
using Microsoft.Extensions.Logging.Abstractions;

// Publishes a simulated fleet through the collector's real producer (CollectorPublisher) to Kafka.
SimulatorArguments options;
try
{
    options = SimulatorArguments.Parse(args);
}
catch (ArgumentException ex)
{
    Console.Error.WriteLine("apm-fleet-simulator: " + ex.Message);
    Console.Error.WriteLine(SimulatorArguments.Usage);
    return 2;
}

if (options.Help)
{
    Console.WriteLine(SimulatorArguments.Usage);
    return 0;
}

EmbeddedKafkaCluster? cluster = null;
try
{
    var bootstrap = options.BootstrapServers;
    if (bootstrap is null)
    {
        cluster = EmbeddedKafkaCluster.Start(options.Brokers);
        TopicAdmin.EnsureTopics(cluster, ApmTopics.All, options.Partitions);
        bootstrap = cluster.BootstrapServers;
        Console.WriteLine($"embedded Kafka (mock, {options.Brokers} broker(s)) at {bootstrap}");
    }

    var kafka = new KafkaOptions().WithBootstrapServers(bootstrap);
    var metrics = new CollectorMetrics();
    using var stop = new CancellationTokenSource();
    Console.CancelKeyPress += (_, e) =>
    {
        e.Cancel = true;
        stop.Cancel();
    };
    var fleet = new Fleet(options.Jvms, options.LeakingPercent, options.RestartingPercent, options.JvmsPerHost, DateTimeOffset.UtcNow, options.Seed);
    Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
        $"{options.Jvms} JVMs ({options.LeakingPercent}% leaking, {options.RestartingPercent}% restarting) every {options.Interval.TotalSeconds:0.##} s = {options.SamplesPerSecond:0} samples/s to {ApmTopics.Samples}"));
    using (var publisher = new CollectorPublisher(kafka, new CollectorOptions { HostName = "fleet-simulator" }, metrics, NullLogger.Instance))
    {
        using var progress = new Timer(_ => Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"{DateTime.UtcNow:HH:mm:ss} published {metrics.SamplesPublished} messages, delivery failures {metrics.DeliveryFailures}, buffer full {metrics.SamplesDropped}")),
            null, TimeSpan.FromSeconds(5), TimeSpan.FromSeconds(5));
        var result = FleetRunner.Run(fleet, publisher, options.SamplesPerSecond, options.Duration, stop.Token);
        var remaining = publisher.Flush(TimeSpan.FromSeconds(30));
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"done: {result.Samples} samples ({result.Messages} messages) in {result.Elapsed.TotalSeconds:0.0} s = {result.SamplesPerSecond:0} samples/s; acknowledged {metrics.SamplesPublished}, unacknowledged {remaining}, waits on a full buffer {result.BufferFullWaits}"));
        var restarts = fleet.Jvms.Sum(j => j.Restarts);
        Console.WriteLine($"restarts {restarts}, leaking JVMs {fleet.Jvms.Count(j => j.Kind == JvmKind.Leaking)}");
        return remaining == 0 ? 0 : 1;
    }
}
finally
{
    cluster?.Dispose();
}
