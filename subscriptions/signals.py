"""What subscriptions announce to the apps above it, which may not be imported from here.

`invoice_issued` (one invoice) and `invoices_issued` (a billing run's batch) are sent inside the transaction that issued the invoice, once
its lines, order and services exist, so a receiver (payments applies account
credit, charges a saved method) acts on a complete invoice and rolls back with it.
"""

from __future__ import annotations

from django.dispatch import Signal

# sender: the Invoice class; invoice: the issued, numbered invoice (still unpaid unless free).
# A receiver that changed the invoice's row returns something true, so the sender reads it again.
invoice_issued = Signal()

# sender: the PlanChange class; plan_change: the change just applied, to a higher tier at a
# lower price; invoice: the paid invoice that bought the period it cuts short; amount: the
# unused part of that period, prorated like an upgrade's charge. Sent in the change's
# transaction: payments writes the credit note and the account credit, or nothing at all.
plan_change_credit_due = Signal()

# sender: the Invoice class; invoices: a list of issued renewal invoices (a billing run's
# batch). Sent once per batch, so a receiver acts on the whole batch in a fixed number of
# queries rather than a few per invoice. A receiver that paid some of them returns something
# true, so the sender reads their status again (a billing run moves on the services of those
# still unpaid).
invoices_issued = Signal()

# sender: the Invoice class; customer_ids: the customers of a billing run's batch, whose
# renewal invoices are written but not numbered yet. Each receiver returns the set of those
# whose invoices it may pay as they are issued (payments: the customers with account credit).
# The run moves the services of the others on before numbering their invoices, and those of
# these after `invoices_issued`, as the payment left them.
invoices_payers = Signal()
