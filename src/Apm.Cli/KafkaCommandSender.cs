using Apm.Kafka;
using Apm.Protocol.V1;
using Apm.Server;
using Confluent.Kafka;
using Google.Protobuf;

namespace Apm.Cli;

/// <summary>Publishes collector commands to the commands topic, keyed by the target host (see agent-protocol/PROTOCOL.md).</summary>
internal sealed class KafkaCommandSender(KafkaOptions kafka) : ICommandSender, IDisposable
{
    private readonly IProducer<string, byte[]> _producer = new ProducerBuilder<string, byte[]>(kafka.CreateProducerConfig()).Build();

    public async Task SendAsync(CollectorCommand command, CancellationToken ct)
    {
        ArgumentNullException.ThrowIfNull(command);
        await _producer.ProduceAsync(ApmTopics.Commands, new Message<string, byte[]> { Key = command.TargetHost, Value = command.ToByteArray() }, ct).ConfigureAwait(false);
    }

    public void Dispose() => _producer.Dispose();
}
