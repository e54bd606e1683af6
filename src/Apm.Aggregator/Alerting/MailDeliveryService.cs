using Apm.Alerts.Mail;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;

namespace Apm.Aggregator.Alerting;

/// <summary>
/// Sends what the alert outbox holds: right after an alert is queued (<see cref="Queue"/> wakes it) and every
/// <see cref="PollInterval"/> for retries. The outbox keeps each message on disk until the SMTP server accepted it, so
/// a mail server that is down delays alert e-mail (with per-message backoff) but never loses it.
/// </summary>
public sealed partial class MailDeliveryService(MailOutbox outbox, ILogger<MailDeliveryService> logger) : BackgroundService
{
    private readonly SemaphoreSlim _wake = new(0, int.MaxValue);
    private long _roundFailures;

    /// <summary>How often due retries are looked for when nothing new was queued.</summary>
    public TimeSpan PollInterval { get; init; } = TimeSpan.FromSeconds(5);

    /// <summary>Delivery rounds that failed as a whole (the outbox unreadable, an unexpected error); each is retried.</summary>
    public long RoundFailures => Interlocked.Read(ref _roundFailures);

    /// <summary>The outbox this service drains.</summary>
    public MailOutbox Outbox => outbox;

    /// <summary>Persists the mail (throws when the disk write fails) and wakes the sender.</summary>
    public void Queue(AlertNotification notification)
    {
        outbox.Enqueue(notification);
        _wake.Release();
    }

    /// <summary>Persists the "report ready" mail and wakes the sender.</summary>
    public void Queue(ReportNotification notification)
    {
        outbox.Enqueue(notification);
        _wake.Release();
    }

    /// <inheritdoc />
    public override void Dispose()
    {
        _wake.Dispose();
        base.Dispose();
    }

    /// <inheritdoc />
    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        while (!stoppingToken.IsCancellationRequested)
        {
            try
            {
                var sent = await outbox.DeliverPendingAsync(stoppingToken).ConfigureAwait(false);
                if (sent > 0) LogSent(logger, sent, outbox.Pending);
            }
            catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
            {
                return;
            }
#pragma warning disable CA1031 // Whatever fails (the outbox directory, permissions, an SMTP client surprise), the files stay and the next round retries: ending this service would stop the aggregator's host.
            catch (Exception ex)
#pragma warning restore CA1031
            {
                Interlocked.Increment(ref _roundFailures);
                LogOutboxFailed(logger, ex.GetType().Name, ex.Message);
            }

            try
            {
                await _wake.WaitAsync(PollInterval, stoppingToken).ConfigureAwait(false);
            }
            catch (OperationCanceledException)
            {
                return;
            }
        }
    }

    [LoggerMessage(Level = LogLevel.Information, Message = "Sent {Count} alert e-mails; {Pending} still in the outbox")]
    private static partial void LogSent(ILogger logger, int count, int pending);

    [LoggerMessage(Level = LogLevel.Error, Message = "Alert e-mail delivery failed ({Kind}: {Reason}); the outbox keeps every message and the next round retries")]
    private static partial void LogOutboxFailed(ILogger logger, string kind, string reason);
}
