from django.core.management.base import BaseCommand

from payments.demo import load_demo_gateways


class Command(BaseCommand):
    help = "Adds the demo payment gateways: a test card gateway and a bank transfer."

    def handle(self, *args, **options):
        if load_demo_gateways():
            self.stdout.write("Demo gateways loaded: pay with test card 4242 4242 4242 4242.")
        else:
            self.stdout.write("Payment gateways exist already; nothing loaded.")
